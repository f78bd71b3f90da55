"""The composition every contrastive family shares: (focal) CE on the head + weight * contrastive(views).

A family subclasses `ContrastiveObjective` and implements `views(model, batch)`, which runs the
encoder once (or twice) and returns the [CLS] the head classifies and one or more groups of views
`(views [B, V, D], view_mask [B, V] | None)`. The contrastive term is the mean over the groups
(one group per layer for `multilayer`). Its Params subclass `ContrastParams`, overriding defaults.

Loss = CE + alpha * C ("add"), or (1 - alpha) * CE + alpha * C ("convex", Gunel et al.'s lambda).
Returned terms: "loss", "ce" (or "focal_ce"), and the contrastive term by its name
("supcon", "focal_supcon", "margin").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import CONTRASTIVE, FocalCrossEntropy, MemoryQueue, make_contrastive
from . import Objective

WEIGHTINGS = ("add", "convex")
TERM_NAMES = {"supcon": "supcon", "focal": "focal_supcon", "margin": "margin"}


@dataclass
class ContrastParams:
    alpha: float = 0.2  # weight of the contrastive term
    weighting: str = "add"  # "add": CE + alpha * C; "convex": (1 - alpha) * CE + alpha * C (Gunel)
    tau: float = 0.07  # temperature of supcon / focal (margin uses raw cosines)
    normalize: bool = True  # L2-normalise views before the similarity (what kept SCL stable)
    contrast: str = "supcon"  # "supcon", "focal" (focal contrastive) or "margin" (seed 003)
    contrast_gamma: float = 2.0  # focal contrastive: (1 - pt)^gamma
    margin: float = 0.2  # margin contrastive: relu(margin + cos_neg - cos_pos)
    ce: str = "ce"  # classification term: "ce" or "focal" (focal CE)
    focal_gamma: float = 2.0  # focal CE
    proj_dim: int | None = None  # projection head: linear to proj_dim before the loss (then L2)
    memory: int = 0  # past contrast sets (see train.contrast_set) of detached views added to it (0 = off)

    def __post_init__(self):
        if self.alpha < 0 or (self.weighting == "convex" and self.alpha > 1):
            raise ValueError(f"loss.alpha must be >= 0 (and <= 1 when convex), got {self.alpha}")
        for key, value, allowed in (("weighting", self.weighting, WEIGHTINGS),
                                    ("contrast", self.contrast, CONTRASTIVE), ("ce", self.ce, ("ce", "focal"))):
            if value not in allowed:
                raise ValueError(f"loss.{key} must be one of {allowed}, got {value!r}")
        if self.tau <= 0:
            raise ValueError(f"loss.tau must be > 0, got {self.tau}")
        if self.proj_dim is not None and self.proj_dim < 1:
            raise ValueError(f"loss.proj_dim must be >= 1 or null, got {self.proj_dim}")
        if self.memory < 0:
            raise ValueError(f"loss.memory must be >= 0 contrast sets, got {self.memory}")


class ContrastiveObjective(Objective):
    supervised = True  # labels decide positives; SimCSE uses each sample's identity instead
    couples_batch = True

    def __init__(self, params: ContrastParams, hidden_size: int):
        super().__init__()
        self.params = params
        self.contrastive = make_contrastive(params.contrast, params.tau, params.normalize,
                                            params.contrast_gamma, params.margin)
        self.term = TERM_NAMES[params.contrast]
        self.focal = FocalCrossEntropy(params.focal_gamma) if params.ce == "focal" else None
        self.proj = nn.Linear(hidden_size, params.proj_dim) if params.proj_dim else None
        self.queues: dict[int, MemoryQueue] = {}

    def views(self, model, batch) -> tuple[torch.Tensor, list[tuple]]:  # pragma: no cover - interface
        """-> ([CLS] for the head [B, D], [(views [B, V, D], view_mask [B, V] | None), ...])."""
        raise NotImplementedError

    def forward(self, model, batch):
        return self.forward_group(model, [batch])

    def forward_group(self, model, batches):
        """Terms over the union of `batches` (the micro-batches of one optimizer step): CE is the
        mean over all their samples, and every view of every batch is in each anchor's contrast
        set. The encoder runs per batch (its padding stays per batch); all graphs live until the
        caller's backward."""
        encoded = [self.views(model, batch) for batch in batches]
        labels = torch.cat([batch["labels"] for batch in batches])
        logits = model.head(torch.cat([cls for cls, _ in encoded]))
        ce = self.focal(logits, labels) if self.focal else F.cross_entropy(logits, labels)
        groups = [_concat_views(group) for group in zip(*(groups for _, groups in encoded))]
        con = torch.stack([self._contrast(i, v, m, labels) for i, (v, m) in enumerate(groups)]).mean()
        a = self.params.alpha
        loss = ce + a * con if self.params.weighting == "add" else (1 - a) * ce + a * con
        return {"loss": loss, "focal_ce" if self.focal else "ce": ce, self.term: con}

    def _contrast(self, group: int, views, view_mask, labels):
        if self.proj is not None:
            views = self.proj(views)
        ids = labels if self.supervised else torch.arange(len(labels), device=labels.device)
        if not self.params.memory:
            return self.contrastive(views, ids, view_mask)
        queue = self.queues.setdefault(group, MemoryQueue(self.params.memory))
        loss = self.contrastive(views, ids, view_mask, queue.get())
        # queued SimCSE views are negatives of every anchor: a label no sample index takes
        queue.push(views, ids if self.supervised else torch.full_like(ids, -1), view_mask)
        return loss


def _concat_views(parts) -> tuple:
    """[(views [B_i, V, D], view_mask [B_i, V] | None), ...] -> (views [sum B_i, V, D], mask | None)."""
    views = torch.cat([v for v, _ in parts])
    if all(m is None for _, m in parts):
        return views, None
    masks = [torch.ones(v.shape[:2], dtype=torch.bool, device=v.device) if m is None else m.bool() for v, m in parts]
    return views, torch.cat(masks)
