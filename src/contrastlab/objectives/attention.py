"""The [CLS] attention row of chosen layers, captured during the ordinary forward pass.

    with cls_attention(model, layers=[-1]) as rows:
        out = model.encode(input_ids, attention_mask)
    rows[-1]   # [B, T]: softmax attention of the [CLS] query over the keys, mean over heads

Nothing else changes: the model keeps its attention kernel (SDPA for BERT-like models) and no
attention map is materialised that the forward pass would not compute anyway.

- DeBERTa-v2 (`DisentangledSelfAttention`) always computes its probabilities [B, H, T, T]
  explicitly, but returns them only with `output_attentions=True`. A forward hook on its
  attention-dropout module reads them as they pass (before dropout): zero extra compute.
- BERT-like self-attention (`query`/`key` projections, dispatching through
  `ALL_ATTENTION_FUNCTIONS`): hooks on the query and key projections keep their outputs and a
  pre-hook keeps the mask; the [CLS] row is then recomputed as softmax(q_cls K^T * scaling + mask),
  O(B H T d) per layer, exact against eager `output_attentions=True` (dropout aside).

Rows are pre-dropout, detached (top-k selection is not differentiable) and in float32; padding
keys get 0. Layers follow `contrastlab.objectives.layers` (0-based, negative from the end: layer l is
`attentions[l]`); the dict is keyed by the layers exactly as passed.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

from contrastlab.objectives.layers import attention_index
from contrastlab.training.model import Classifier, find_layers


def _self_attention(layer: nn.Module) -> nn.Module:
    for module in layer.modules():
        if hasattr(module, "query_proj") and hasattr(module, "key_proj") and hasattr(module, "dropout"):
            return module  # DeBERTa-v2 disentangled attention
        if hasattr(module, "query") and hasattr(module, "key") and hasattr(module, "attention_head_size"):
            return module  # BERT-like
    raise ValueError(f"cannot find the self-attention of {type(layer).__name__} "
                     "(supported: BERT-like query/key modules, DeBERTa-v2)")


def _hook_probs(attn: nn.Module, store: dict, key) -> list:
    """DeBERTa: the dropout module sees the probabilities [B, H, T, T]; keep row 0."""
    def hook(_module, args):
        store[key] = args[0][:, :, 0, :].detach().float().mean(1)
    return [attn.dropout.register_forward_pre_hook(hook)]


def _hook_qk(attn: nn.Module, store: dict, key) -> list:
    """BERT-like: keep q[:, 0], K and the mask; recompute the [CLS] row after the module runs."""
    seen: dict = {}

    def keep_q(_m, _a, out):
        seen["q"] = out[:, :1].detach()

    def keep_k(_m, _a, out):
        seen["k"] = out.detach()

    def keep_mask(_m, args, kwargs):
        seen["mask"] = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    def compute(_m, _a, _k, _out):
        q, k, mask = seen.pop("q"), seen.pop("k"), seen.pop("mask", None)
        b, t, _ = k.shape
        d = attn.attention_head_size
        q = q.float().view(b, -1, d)  # [B, H, d]
        k = k.float().view(b, t, -1, d)  # [B, T, H, d]
        scaling = getattr(attn, "scaling", d ** -0.5)
        scores = torch.einsum("bhd,bthd->bht", q, k) * scaling  # [B, H, T]
        if mask is not None:
            m = mask.detach()[:, :, 0, :] if mask.dim() == 4 else mask.detach()  # [B, 1 or H, T]
            if m.dtype == torch.bool:
                scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min)
            else:
                scores = scores + m.float()
        store[key] = scores.softmax(-1).mean(1)

    return [attn.query.register_forward_hook(keep_q), attn.key.register_forward_hook(keep_k),
            attn.register_forward_pre_hook(keep_mask, with_kwargs=True),
            attn.register_forward_hook(compute, with_kwargs=True)]


@contextmanager
def cls_attention(model: nn.Module, layers: Iterable[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Yield a dict {layer: [B, T] float32} filled by every forward of `model` (a Classifier or
    its encoder, peft-wrapped or not) inside the block; a later forward overwrites the rows."""
    encoder = model.encoder if isinstance(model, Classifier) else model
    blocks = find_layers(encoder)
    rows: dict[int, torch.Tensor] = {}
    handles = []
    try:
        for layer in layers:
            attn = _self_attention(blocks[attention_index(layer, len(blocks))])
            hook = _hook_probs if hasattr(attn, "query_proj") else _hook_qk
            handles += hook(attn, rows, layer)
        yield rows
    finally:
        for h in handles:
            h.remove()
