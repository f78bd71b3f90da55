"""Contrastive and consistency losses: small modules with one call shape.

Every contrastive loss is called as

    loss(views [B, V, D], labels [B], view_mask [B, V] | None = None, memory = None) -> scalar

- `views`: V views of each of the B samples (any view builder of `contrastlab.objectives.views`).
- `labels`: the class of each sample; views with equal labels are positives of each other,
  including the other views of the same sample. Unsupervised (SimCSE) passes the sample index.
- `view_mask`: False marks a padding view (a sample with fewer real tokens than k, an empty
  cluster); it is neither an anchor nor in any anchor's contrast set.
- `memory`: `(features [M, D], labels [M])` of earlier contrast sets (detached, see
  `MemoryQueue`); they join every anchor's contrast set but are never anchors.

Conventions, each with a test:
- The contrast set of an anchor is every other valid view of the call plus the memory; the
  training loop passes the whole effective batch in one call (`train.contrast_set`).
- An anchor with no positive in its contrast set is not counted (no loss, never NaN); the loss
  is the mean (or, with reduction "sum", the sum) over the anchors that have one, and 0 (still
  in the graph) when none has.
- Unsupervised SimCSE is SupCon with each sample's index as its label: its views are each
  other's only positives.
- A batch of one class has no negatives; SupCon is then still defined (Khosla et al.) and finite.
- The similarity, softmax and log are computed in float32 with autocast off, so half-precision
  views cannot overflow.
"""
from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

Memory = tuple[torch.Tensor, torch.Tensor] | None


def _flatten(views, labels, view_mask):
    """[B, V, D], [B], [B, V] -> the valid views [N, D] and their labels [N]."""
    if views.dim() != 3:
        raise ValueError(f"views must be [batch, n_views, dim], got shape {tuple(views.shape)}")
    b, v, d = views.shape
    if labels.shape != (b,):
        raise ValueError(f"labels must be [batch] = [{b}], got shape {tuple(labels.shape)}")
    feats, labs = views.reshape(b * v, d), labels.repeat_interleave(v)
    if view_mask is not None:
        if view_mask.shape != (b, v):
            raise ValueError(f"view_mask must be [batch, n_views] = [{b}, {v}], got {tuple(view_mask.shape)}")
        keep = view_mask.reshape(-1).bool()
        feats, labs = feats[keep], labs[keep]
    return feats, labs


class _PairwiseLoss(nn.Module):
    """Shared plumbing: anchors x contrast-set similarity [N, N + M] and the masks over it."""

    def __init__(self, temperature: float = 0.07, normalize: bool = True, reduction: str = "mean"):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum' over anchors, got {reduction!r}")
        self.temperature, self.normalize, self.reduction = temperature, normalize, reduction

    def forward(self, views, labels, view_mask=None, memory: Memory = None):
        feats, labs = _flatten(views, labels, view_mask)
        with torch.autocast(views.device.type, enabled=False):
            feats = feats.float()
            cfeats, clabs = feats, labs
            if memory is not None and memory[0].numel():
                cfeats = torch.cat([feats, memory[0].to(feats)])
                clabs = torch.cat([labs, memory[1].to(labs.device)])
            if self.normalize:
                feats, cfeats = F.normalize(feats, dim=-1), F.normalize(cfeats, dim=-1)
            sim = feats @ cfeats.T  # [N, N + M]
            n = feats.shape[0]
            others = torch.ones_like(sim, dtype=torch.bool)
            others[:, :n].fill_diagonal_(False)  # an anchor is not in its own contrast set
            pos = (labs[:, None] == clabs[None, :]) & others
            per_anchor, counted = self._per_anchor(sim, pos, others)
        if not counted.any():
            return views.sum().float() * 0.0  # no anchor has a positive: no loss (float32), zero gradient
        kept = per_anchor[counted]
        return kept.sum() if self.reduction == "sum" else kept.mean()

    def _per_anchor(self, sim, pos, others):  # pragma: no cover - interface
        raise NotImplementedError

    def _log_prob(self, sim, others):
        """log softmax of sim / tau over each anchor's contrast set [N, N + M] (-inf outside it)."""
        logits = (sim / self.temperature).masked_fill(~others, float("-inf"))
        return logits - torch.logsumexp(logits, dim=1, keepdim=True)


class SupConLoss(_PairwiseLoss):
    """Supervised contrastive loss (Khosla et al. 2020, the 'L_out' form of SupContrast):
    per anchor, -mean over its positives p of log softmax_{a != anchor}(sim / tau)[p]."""

    def _per_anchor(self, sim, pos, others):
        log_prob = self._log_prob(sim, others).masked_fill(~pos, 0.0)
        n_pos = pos.sum(1)
        return -log_prob.sum(1) / n_pos.clamp(min=1), n_pos > 0


class FocalSupConLoss(_PairwiseLoss):
    """Focal contrastive (seed 003): per (anchor, positive) pair with softmax probability pt,
    -(1 - pt)^gamma log pt, averaged over the anchor's positives."""

    def __init__(self, temperature: float = 0.1, gamma: float = 2.0, normalize: bool = True, reduction: str = "mean"):
        super().__init__(temperature, normalize, reduction)
        self.gamma = gamma

    def _per_anchor(self, sim, pos, others):
        log_prob = self._log_prob(sim, others).masked_fill(~pos, 0.0)
        focal = -(1 - log_prob.exp()).clamp(min=0) ** self.gamma * log_prob
        n_pos = pos.sum(1)
        return focal.masked_fill(~pos, 0.0).sum(1) / n_pos.clamp(min=1), n_pos > 0


class MarginContrastiveLoss(_PairwiseLoss):
    """Margin contrastive (seed 003): relu(margin + cos(a, n) - cos(a, p)) averaged over every
    (positive, negative) pair of the anchor; an anchor needs both to count. No temperature.
    Memory O(N * C^2) for N anchors and C contrasts."""

    def __init__(self, margin: float = 0.2, normalize: bool = True, reduction: str = "mean"):
        super().__init__(1.0, normalize, reduction)
        self.margin = margin

    def _per_anchor(self, sim, pos, others):
        neg = others & ~pos
        hinge = F.relu(self.margin + sim[:, None, :] - sim[:, :, None])  # [N, pos, neg]
        pair = pos[:, :, None] & neg[:, None, :]
        n_pair = pair.sum((1, 2))
        return (hinge * pair).sum((1, 2)) / n_pair.clamp(min=1), n_pair > 0


class FocalCrossEntropy(nn.Module):
    """Focal CE (Lin et al.): mean over the batch of -(1 - p_y)^gamma log p_y; gamma 0 is CE.
    logits [B, C], labels [B] -> scalar (float32)."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, logits, labels):
        logp = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
        return (-(1 - logp.exp()).clamp(min=0) ** self.gamma * logp).mean()


KL_REDUCTIONS = ("batchmean", "sum", "mean")


def symmetric_kl(logits1, logits2, reduction: str = "batchmean"):
    """(KL(p1 || p2) + KL(p2 || p1)) / 2 of two outputs [B, C] (float32), reduced by
    'batchmean' (sum over classes, mean over samples: the true per-sample KL; the default),
    'sum' (over everything, the R-Drop authors' code) or 'mean' (over all B * C elements).

    The reductions are written out rather than left to `F.kl_div`, whose 'mean' is deprecated
    (it warns on every call and is announced to become 'batchmean'): 'mean' must stay the
    per-element mean, 1/C of 'batchmean'."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"KL reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    if logits1.shape != logits2.shape or logits1.dim() != 2:
        raise ValueError(f"symmetric_kl takes two [batch, classes] outputs, got {tuple(logits1.shape)} "
                         f"and {tuple(logits2.shape)}")
    with torch.autocast(logits1.device.type, enabled=False):
        lp1, lp2 = F.log_softmax(logits1.float(), -1), F.log_softmax(logits2.float(), -1)
        # p1 log(p1 / p2) + p2 log(p2 / p1), per element [B, C]
        elem = (lp1.exp() - lp2.exp()) * (lp1 - lp2) / 2
        total = elem.sum()
    if reduction == "sum":
        return total
    return total / (elem.shape[0] if reduction == "batchmean" else elem.numel())


class MemoryQueue:
    """The views and labels of the last `size` contrast sets, detached, as extra contrasts.

    A contrast set is what one loss call sees with gradient: under `train.contrast_set`
    "effective" (default) every micro-batch of an optimizer step, so the queue holds the last
    `size` effective batches (older weights); under "micro_batch" one micro-batch, so
    `size >= grad_accum - 1` reaches back over the step's earlier micro-batches, without
    gradient. The queue is not checkpointed: a resumed run starts with it empty.
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"memory size must be >= 1 micro-batch, got {size}")
        self.items: deque = deque(maxlen=size)

    def get(self) -> Memory:
        """(features [M, D], labels [M]) of the queued contrast sets, or None while empty."""
        if not self.items:
            return None
        return torch.cat([f for f, _ in self.items]), torch.cat([l for _, l in self.items])

    def push(self, views, labels, view_mask=None) -> None:
        """Add a contrast set's valid views [B, V, D] (detached) with their labels [B]."""
        feats, labs = _flatten(views.detach(), labels.detach(), view_mask)
        self.items.append((feats, labs))


CONTRASTIVE = ("supcon", "focal", "margin")


def make_contrastive(kind: str, temperature: float, normalize: bool = True, gamma: float = 2.0,
                     margin: float = 0.2, reduction: str = "mean") -> nn.Module:
    """The contrastive term named by a config: 'supcon', 'focal' (focal SupCon) or 'margin'."""
    if kind == "supcon":
        return SupConLoss(temperature, normalize, reduction)
    if kind == "focal":
        return FocalSupConLoss(temperature, gamma, normalize, reduction)
    if kind == "margin":
        return MarginContrastiveLoss(margin, normalize, reduction)
    raise ValueError(f"contrastive loss must be one of {CONTRASTIVE}, got {kind!r}")
