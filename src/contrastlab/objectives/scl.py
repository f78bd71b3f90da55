"""`scl`: CE + alpha * SupCon over [CLS] views (Gunel et al.: weighting "convex", alpha 0.9, tau 0.3).

views "one": the final [CLS]  ->  [B, 1, D].
views "multi": the final [CLS], the [CLS] of encoder layer `layer` (contrastlab.layers
convention; -4 is layer 8 of the reference's 12-layer DeBERTa) and a dropout view of the final
[CLS] (the head's dropout, the one-stage R-Drop view)  ->  [B, 3, D].
`normalize: false` drops the L2 normalisation (the reference's unstable first version).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..layers import resolve_layer
from ..views import dropout_views, encode, layer_cls_views
from .composite import ContrastiveObjective, ContrastParams

DEPENDS = ["losses", "views", "attention", "objectives.composite"]


@dataclass
class Params(ContrastParams):
    views: str = "one"  # "one" or "multi"
    layer: int = -4  # intermediate layer of the multi-view

    def __post_init__(self):
        super().__post_init__()
        if self.views not in ("one", "multi"):
            raise ValueError(f"loss.views must be 'one' or 'multi', got {self.views!r}")


class SupConViews(ContrastiveObjective):
    def views(self, model, batch):
        multi = self.params.views == "multi"
        out, _ = encode(model, batch, hidden_states=multi)
        cls = out.last_hidden_state[:, 0]
        if not multi:
            return cls, [(cls[:, None], None)]
        views = torch.cat([cls[:, None], layer_cls_views(out.hidden_states, [self.params.layer]),
                           dropout_views(cls, model.dropout)], 1)
        return cls, [(views, None)]


def check_layers(layers, model) -> None:
    for layer in layers:
        resolve_layer(layer, model.num_layers)  # raises naming the valid range


def build(params: Params, model) -> SupConViews:
    if params.views == "multi":
        check_layers([params.layer], model)
    return SupConViews(params, model.hidden_size)
