"""`scl`: SupCon over one or three [CLS] views (see the package docstring)."""
from __future__ import annotations

import torch

from contrastlab.objectives.contrastive import ContrastiveObjective
from contrastlab.objectives.layers import check_layers
from contrastlab.objectives.views import dropout_views, encode, layer_cls_views
from contrastlab.objectives.families.scl import Params


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


def build(params: Params, model) -> SupConViews:
    check_layers(params.contrast_layers(), model.num_layers)
    return SupConViews(params, model.hidden_size)
