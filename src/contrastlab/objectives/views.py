"""View builders: each returns views [B, V, D] (and, where some can be padding, view_mask [B, V]),
so any contrastive loss of `contrastlab.objectives.losses` takes any of them.

Layer indices follow `contrastlab.objectives.layers`: layer l (0-based, negative from the end) is
`hidden_states[l + 1]` and its [CLS] attention row comes from the same block (`attentions[l]`).

Top-k rule (k larger than a sequence's real tokens): the views are the sequence's real tokens
only ([CLS], [SEP] and padding excluded), highest [CLS] attention first; the remaining of the k
slots are padding views (zeros, view_mask False) that no loss counts. A sequence with no real
token contributes no view.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from contrastlab.objectives.attention import cls_attention
from contrastlab.objectives.layers import hidden_state_index, resolve_layer


def encode(model, batch: dict, hidden_states: bool = False, attention_layers: Sequence[int] = ()):
    """One encoder pass; -> (HF output, {layer: [CLS] attention row [B, T]}) (rows only for
    `attention_layers`, computed in the same pass, see `contrastlab.objectives.attention`)."""
    with cls_attention(model, attention_layers) as rows:
        out = model.encode(batch["input_ids"], batch["attention_mask"], output_hidden_states=hidden_states)
    return out, rows


def token_mask(batch: dict) -> torch.Tensor:
    """[B, T] bool: the real tokens a top-k may pick. From the batch's "special_tokens_mask"
    (1 = special) when present; otherwise position 0 ([CLS]) and each row's last real token
    ([SEP]) are excluded, which holds for right-padded single-segment BERT/DeBERTa input."""
    mask = batch["attention_mask"].bool()
    if "special_tokens_mask" in batch:
        return mask & ~batch["special_tokens_mask"].bool()
    if not mask[:, 0].all():
        raise ValueError("token_mask assumes right padding ([CLS] at position 0); pass "
                         "batch['special_tokens_mask'] for other layouts")
    mask = mask.clone()
    last = mask.sum(1) - 1
    mask[:, 0] = False
    mask[torch.arange(mask.shape[0], device=mask.device), last] = False
    return mask


def top_tokens(model, batch: dict, layer: int, k: int):
    """-> (final [CLS] [B, D], views [B, k, D], view_mask [B, k]): the k tokens of `layer` that its
    [CLS] attends to most, from one encoder pass (the `token` and `cluster` families' views)."""
    last = resolve_layer(layer, model.num_layers) == model.num_layers - 1
    out, rows = encode(model, batch, hidden_states=not last, attention_layers=[layer])
    hidden = out.last_hidden_state if last else out.hidden_states[hidden_state_index(layer, model.num_layers)]
    views, mask = topk_token_views(hidden, rows[layer], token_mask(batch), k)
    return out.last_hidden_state[:, 0], views, mask


def cls_view(hidden: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, D] -> its [CLS] as one view [B, 1, D]."""
    return hidden[:, :1]


def layer_cls_views(hidden_states: Sequence[torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """The [CLS] of each layer in `layers` (HF `hidden_states`, L + 1 entries) -> [B, len(layers), D]."""
    n = len(hidden_states) - 1
    return torch.stack([hidden_states[hidden_state_index(l, n)][:, 0] for l in layers], 1)


def dropout_views(cls: torch.Tensor, dropout: nn.Module, n: int = 1) -> torch.Tensor:
    """cls [B, D] -> n independent dropout draws [B, n, D] (the head's dropout: R-Drop's view)."""
    return torch.stack([dropout(cls) for _ in range(n)], 1)


def topk_token_views(hidden: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, k: int):
    """The k tokens with the highest score per sample, highest first.

    hidden [B, T, D], scores [B, T] ([CLS] attention), mask [B, T] (True = may be picked)
    -> views [B, k, D] (gradient flows into the picked hidden states), view_mask [B, k]
    (False for the padding views of a sequence with fewer than k real tokens)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    b, t, d = hidden.shape
    kk = min(k, t)
    scores = scores.float().masked_fill(~mask, float("-inf"))
    top, idx = scores.topk(kk, dim=1)  # [B, kk]
    valid = torch.isfinite(top)
    views = hidden.gather(1, idx[..., None].expand(b, kk, d)) * valid[..., None].to(hidden.dtype)
    if kk < k:
        views = torch.cat([views, views.new_zeros(b, k - kk, d)], 1)
        valid = torch.cat([valid, valid.new_zeros(b, k - kk)], 1)
    return views, valid


@torch.no_grad()
def kmeans(x: torch.Tensor, mask: torch.Tensor, n_clusters: int, iters: int = 10) -> torch.Tensor:
    """Batched Lloyd k-means, one clustering per sample, deterministic.

    x [B, N, D], mask [B, N] -> assignment [B, N] in 0..n_clusters-1 (-1 for masked points).
    Init (deterministic farthest-point): the first valid point (with top-k views: the most
    attended token), then repeatedly the valid point farthest from the centres chosen so far; a
    sample with fewer valid points than clusters leaves the rest empty. Fixed iteration count; an
    emptied cluster keeps its centre. Torch rather than scikit-learn: it runs batched on the
    model's device, and the means are then taken in torch so gradients flow through them."""
    b, n, d = x.shape
    x = x.float()
    rows = torch.arange(b, device=x.device)
    centres = x.new_zeros(b, n_clusters, d)
    alive = torch.zeros(b, n_clusters, dtype=torch.bool, device=x.device)
    gap = torch.zeros(b, n, device=x.device).masked_fill(~mask, float("-inf"))
    for c in range(n_clusters):
        best, pick = gap.max(1)
        if c == 0:  # the first valid point, independent of how a device breaks ties
            pick = torch.where(mask, torch.arange(n, device=x.device), n).min(1).values.clamp(max=n - 1)
        alive[:, c] = best > (float("-inf") if c == 0 else 0.0)  # a valid point not already a centre
        centres[:, c] = x[rows, pick]
        dist = (x - centres[:, c:c + 1]).norm(dim=-1)  # [B, N]
        nearest = dist if c == 0 else torch.minimum(nearest, dist)
        gap = nearest.masked_fill(~mask, float("-inf"))
    assign = torch.zeros(b, n, dtype=torch.long, device=x.device)
    for _ in range(iters):
        dist = torch.cdist(x, centres).masked_fill(~alive[:, None, :], float("inf"))  # [B, N, nc]
        assign = dist.argmin(-1)
        onehot = nn.functional.one_hot(assign, n_clusters).float() * mask[..., None]
        counts = onehot.sum(1)  # [B, nc]
        sums = onehot.transpose(1, 2) @ x
        centres = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], centres)
    return assign.masked_fill(~mask, -1)


def cluster_views(tokens: torch.Tensor, mask: torch.Tensor, n_clusters: int, iters: int = 10):
    """The k-means cluster means of each sample's tokens as its views.

    tokens [B, K, D], mask [B, K] -> views [B, n_clusters, D], view_mask [B, n_clusters]
    (False for an empty cluster). Assignments are detached; the means are differentiable."""
    assign = kmeans(tokens.detach(), mask, n_clusters, iters)
    onehot = nn.functional.one_hot(assign.clamp(min=0), n_clusters).to(tokens.dtype) * mask[..., None]
    counts = onehot.sum(1)  # [B, nc]
    means = onehot.transpose(1, 2) @ tokens / counts.clamp(min=1)[..., None]
    return means, counts > 0


def layer_set_views(hidden_states: Sequence[torch.Tensor], layers: Sequence[int], level: str,
                    dropout: nn.Module | None = None, rows: dict | None = None,
                    mask: torch.Tensor | None = None, k: int = 0) -> list[tuple]:
    """One group of views per layer of a layer set, for a loss per layer.

    level "sentence": the layer's [CLS] and its dropout view -> [B, 2, D], mask None;
    level "token": the layer's top-k tokens by its own [CLS] attention (`rows[layer]` [B, T],
    token `mask` [B, T]) -> [B, k, D] with view_mask [B, k]."""
    n = len(hidden_states) - 1
    groups = []
    for layer in layers:
        hidden = hidden_states[hidden_state_index(layer, n)]
        if level == "sentence":
            groups.append((torch.cat([cls_view(hidden), dropout_views(hidden[:, 0], dropout)], 1), None))
        elif level == "token":
            groups.append(topk_token_views(hidden, rows[layer], mask, k))
        else:
            raise ValueError(f"level must be 'sentence' or 'token', got {level!r}")
    return groups
