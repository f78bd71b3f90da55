"""`rdrop`: CE1 + CE2 + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2 over two outputs of one input.

stages 1 (one-stage): ONE encoder pass; the head's dropout is drawn twice on the same [CLS].
stages 2 (two-stage): two encoder passes (different dropout masks everywhere), ~2x compute.
The KL reduction is `kl_reduction` (see `contrastlab.losses.symmetric_kl`): "batchmean" (the
per-sample KL averaged over the batch; default), "sum" (the R-Drop authors' code) or "mean".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..losses import KL_REDUCTIONS, symmetric_kl
from . import Objective

DEPENDS = ["losses"]


@dataclass
class Params:
    alpha: float = 0.2
    stages: int = 1
    kl_reduction: str = "batchmean"

    def __post_init__(self):
        if self.stages not in (1, 2):
            raise ValueError(f"loss.stages must be 1 (one encoder pass) or 2, got {self.stages}")
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"loss.kl_reduction must be one of {KL_REDUCTIONS}, got {self.kl_reduction!r}")
        if self.alpha < 0:
            raise ValueError(f"loss.alpha must be >= 0, got {self.alpha}")


class RDrop(Objective):
    def __init__(self, params: Params):
        super().__init__()
        self.params = params

    def forward(self, model, batch):
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        cls1 = model.encode(ids, mask).last_hidden_state[:, 0]
        cls2 = cls1 if self.params.stages == 1 else model.encode(ids, mask).last_hidden_state[:, 0]
        logits1, logits2 = model.head(cls1), model.head(cls2)
        ce1, ce2 = F.cross_entropy(logits1, labels), F.cross_entropy(logits2, labels)
        kl = symmetric_kl(logits1, logits2, self.params.kl_reduction)
        return {"loss": ce1 + ce2 + self.params.alpha * kl, "ce1": ce1, "ce2": ce2, "kl": kl}


def build(params: Params, model) -> Objective:
    return RDrop(params)
