"""`token`: CE + alpha * SupCon over the k tokens each sample's [CLS] attends to most.

The views are the hidden states (output of encoder layer `layer`) of the k tokens with the
highest [CLS] attention in that same layer (mean over heads; [CLS], [SEP] and padding excluded),
computed during the ordinary forward pass (contrastlab.attention). With fewer than k real tokens
the views are the real tokens only; the other slots are padding views no loss counts.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..layers import hidden_state_index
from ..views import encode, token_mask, topk_token_views
from .composite import ContrastiveObjective, ContrastParams
from .scl import check_layers

DEPENDS = ["losses", "views", "attention", "objectives.composite", "objectives.scl"]


@dataclass
class Params(ContrastParams):
    k: int = 30
    layer: int = -1

    def __post_init__(self):
        super().__post_init__()
        if self.k < 1:
            raise ValueError(f"loss.k must be >= 1, got {self.k}")


def top_tokens(model, batch, layer: int, k: int):
    """-> (final [CLS] [B, D], views [B, k, D], view_mask [B, k]) from one encoder pass."""
    out, rows = encode(model, batch, hidden_states=layer != -1, attention_layers=[layer])
    hidden = out.last_hidden_state if layer == -1 else out.hidden_states[hidden_state_index(layer, model.num_layers)]
    views, mask = topk_token_views(hidden, rows[layer], token_mask(batch), k)
    return out.last_hidden_state[:, 0], views, mask


class TokenViews(ContrastiveObjective):
    def views(self, model, batch):
        cls, views, mask = top_tokens(model, batch, self.params.layer, self.params.k)
        return cls, [(views, mask)]


def build(params: Params, model) -> TokenViews:
    check_layers([params.layer], model)
    return TokenViews(params, model.hidden_size)
