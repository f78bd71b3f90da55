"""`rdrop`: two outputs of one input, CE on each and their symmetric KL (see the package docstring)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from contrastlab.objectives.losses import symmetric_kl
from contrastlab.objectives.objective import Objective, cls_of, labels_of
from contrastlab.objectives.families.rdrop import Params


class RDrop(Objective):
    def __init__(self, params: Params):
        super().__init__()
        self.params = params

    @property
    def weights(self):
        return {"ce1": 1.0, "ce2": 1.0, "kl": self.params.alpha}

    @property
    def classification_terms(self):
        return {"ce1", "ce2"}

    def forward(self, model, batches, n_total):
        cls1 = torch.cat([cls_of(model, b) for b in batches])
        cls2 = cls1 if self.params.stages == 1 else torch.cat([cls_of(model, b) for b in batches])
        logits1, logits2 = model.head(cls1).float(), model.head(cls2).float()
        labels = labels_of(batches)
        ce1 = F.cross_entropy(logits1, labels, reduction="sum") / n_total
        ce2 = F.cross_entropy(logits2, labels, reduction="sum") / n_total
        # the summed KL of these samples, scaled to the effective batch's reduction
        scale = {"batchmean": 1 / n_total, "sum": 1.0, "mean": 1 / (n_total * logits1.shape[1])}
        kl = symmetric_kl(logits1, logits2, "sum") * scale[self.params.kl_reduction]
        return {"loss": ce1 + ce2 + self.params.alpha * kl, "ce": (ce1 + ce2) / 2, "ce1": ce1, "ce2": ce2, "kl": kl}


def build(params: Params, model) -> Objective:
    return RDrop(params)
