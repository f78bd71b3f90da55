"""`simcse`: CE + alpha * unsupervised SimCSE beside it (labels are not used by the term).

Two dropout views of each sample's final [CLS] are each other's only positive; every other view
in the micro-batch (and in the memory, if on) is a negative (NT-Xent over 2B views, tau 0.05).
stages 2 (default, as in SimCSE): two encoder passes, so the views differ by the encoder's
dropout; CE is on the first. stages 1: one pass, the head's dropout drawn twice (cheap, weaker).
alpha 0.1 is contrastlab's choice (no reference value).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..views import dropout_views
from .composite import ContrastiveObjective, ContrastParams

DEPENDS = ["losses", "views", "attention", "objectives.composite"]


@dataclass
class Params(ContrastParams):
    tau: float = 0.05
    alpha: float = 0.1
    stages: int = 2

    def __post_init__(self):
        super().__post_init__()
        if self.stages not in (1, 2):
            raise ValueError(f"loss.stages must be 1 or 2, got {self.stages}")


class SimCSE(ContrastiveObjective):
    supervised = False

    def views(self, model, batch):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        cls = model.encode(ids, mask).last_hidden_state[:, 0]
        if self.params.stages == 1:
            return cls, [(dropout_views(cls, model.dropout, n=2), None)]
        cls2 = model.encode(ids, mask).last_hidden_state[:, 0]
        return cls, [(torch.stack([cls, cls2], 1), None)]


def build(params: Params, model) -> SimCSE:
    return SimCSE(params, model.hidden_size)
