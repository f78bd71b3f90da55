"""`baseline`: cross-entropy on the head's logits over the final-layer [CLS]."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from contrastlab.objectives.objective import Objective, cls_of
from contrastlab.objectives.families.baseline import Params


class CrossEntropy(Objective):
    def __init__(self, params: Params):
        super().__init__()
        self.params = params

    def forward(self, model, batches, n_total):
        logits = model.head(torch.cat([cls_of(model, b) for b in batches])).float()
        labels = torch.cat([b["labels"] for b in batches])
        ce = F.cross_entropy(logits, labels, label_smoothing=self.params.label_smoothing, reduction="sum") / n_total
        return {"loss": ce, "ce": ce}


def build(params: Params, model) -> Objective:
    return CrossEntropy(params)
