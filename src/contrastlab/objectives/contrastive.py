"""The composition every contrastive family shares: (focal) CE on the head + weight * contrastive(views).

A family subclasses `ContrastiveObjective` and implements `views(model, batch)`, which runs the
encoder once (or twice) and returns the [CLS] the head classifies and one or more groups of views
`(views [B, V, D], view_mask [B, V] | None)`. The contrastive term is the mean over the groups
(one group per layer for `multilayer`). Its Params subclass `contrastlab.plan.config.ContrastParams`.

Loss = CE + alpha * C ("add"), or (1 - alpha) * CE + alpha * C ("convex", Gunel et al.'s lambda).
C is the mean over anchors (reduction "mean") or their sum ("sum", Gunel's equation as printed).
Returned terms: "loss", "ce" (or "focal_ce"), and the contrastive term by its name
("supcon", "focal_supcon", "margin"), each as its share of the optimizer step (contrastlab.objectives.objective).

Under `train.grad_cache` the views are first computed without a graph for every micro-batch, the
loss and its gradient with respect to the views are taken over all of them, and then each
micro-batch's encoder runs again (with the same random state, so the same dropout) and
backpropagates its views' gradient: the effective contrast set at one micro-batch's activation
memory (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contrastlab.plan.config import ContrastParams
from contrastlab.objectives.losses import FocalCrossEntropy, MemoryQueue, make_contrastive
from contrastlab.objectives.objective import Objective, labels_of

TERM_NAMES = {"supcon": "supcon", "focal": "focal_supcon", "margin": "margin"}


class ContrastiveObjective(Objective):
    couples_batch = True

    @property
    def supervised(self) -> bool:
        """Labels decide the positives; else each sample's identity does (the family's Params say)."""
        return self.params.SUPERVISED

    def __init__(self, params: ContrastParams, hidden_size: int):
        super().__init__()
        self.params = params
        self.contrastive = make_contrastive(params.contrast, params.tau, params.normalize,
                                            params.contrast_gamma, params.margin, params.reduction)
        self.term = TERM_NAMES[params.contrast]
        self.ce_term = "focal_ce" if params.ce == "focal" else "ce"
        self.focal = FocalCrossEntropy(params.focal_gamma) if params.ce == "focal" else None
        self.proj = nn.Linear(hidden_size, params.proj_dim) if params.proj_dim else None
        self.queues: dict[int, MemoryQueue] = {}

    @property
    def weights(self) -> dict[str, float]:
        a = self.params.alpha
        return {self.ce_term: 1.0 if self.params.weighting == "add" else 1.0 - a, self.term: a}

    def views(self, model, batch) -> tuple[torch.Tensor, list[tuple]]:  # pragma: no cover - interface
        """-> ([CLS] for the head [B, D], [(views [B, V, D], view_mask [B, V] | None), ...])."""
        raise NotImplementedError

    def forward(self, model, batches, n_total):
        """Terms over the union of `batches`: CE over all their samples, and every view of every
        batch in each anchor's contrast set. The encoder runs per batch (its padding stays per
        batch); all graphs live until the caller's backward."""
        encoded = [self.views(model, batch) for batch in batches]
        return self._terms(model, encoded, labels_of(batches), n_total)

    def _terms(self, model, encoded, labels, n_total):
        share = len(labels) / n_total  # a mean over these samples -> its share of the step
        logits = model.head(torch.cat([cls for cls, _ in encoded])).float()
        ce = (self.focal(logits, labels) if self.focal else F.cross_entropy(logits, labels)) * share
        groups = [_concat_views(group) for group in zip(*(groups for _, groups in encoded))]
        con = torch.stack([self._contrast(i, v, m, labels) for i, (v, m) in enumerate(groups)]).mean()
        con = con if self.params.reduction == "sum" else con * share
        w = self.weights
        return {"loss": w[self.ce_term] * ce + w[self.term] * con, self.ce_term: ce, self.term: con}

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

    def forward_backward_cached(self, model, batches, n_total, backward) -> dict[str, torch.Tensor]:
        """GradCache: the terms of `forward(model, batches, n_total)` and their gradient in every
        parameter, holding one micro-batch's activations at a time. `backward(tensor)` runs the
        caller's backward (through its gradient scaler). Returns the detached terms."""
        states, encoded = [], []
        device = batches[0]["input_ids"].device
        with torch.no_grad():
            for batch in batches:
                states.append(_rng_state(device))
                encoded.append(self.views(model, batch))
        leaves = [(cls.detach().requires_grad_(), [(v.detach().requires_grad_(), m) for v, m in groups])
                  for cls, groups in encoded]
        terms = self._terms(model, leaves, labels_of(batches), n_total)
        backward(terms["loss"])  # head and projection grads; the views' grads land on the leaves
        after = _rng_state(device)
        for batch, state, (cls_leaf, group_leaves) in zip(batches, states, leaves):
            _set_rng_state(state, device)
            cls, groups = self.views(model, batch)  # the same views, now with a graph
            outs = [cls] + [v for v, _ in groups]
            grads = [cls_leaf.grad] + [v.grad for v, _ in group_leaves]
            # a view no trainable parameter feeds (a frozen layer's) has nothing to backpropagate into
            used = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
            if used:
                torch.autograd.backward([o for o, _ in used], [g.to(o.dtype) for o, g in used])
        _set_rng_state(after, device)
        return {k: v.detach() for k, v in terms.items()}


def _rng_state(device: torch.device):
    """The generators a re-run on `device` draws its dropout from: the CPU's and that GPU's only
    (asking every GPU would initialise CUDA on GPUs other jobs hold)."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _concat_views(parts) -> tuple:
    """[(views [B_i, V, D], view_mask [B_i, V] | None), ...] -> (views [sum B_i, V, D], mask | None)."""
    views = torch.cat([v for v, _ in parts])
    if all(m is None for _, m in parts):
        return views, None
    masks = [torch.ones(v.shape[:2], dtype=torch.bool, device=v.device) if m is None else m.bool() for v, m in parts]
    return views, torch.cat(masks)
