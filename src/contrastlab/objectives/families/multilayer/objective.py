"""`multilayer`: a SupCon term per layer of a layer set, averaged (see the package docstring)."""
from __future__ import annotations

from contrastlab.objectives.contrastive import ContrastiveObjective
from contrastlab.objectives.layers import check_layers
from contrastlab.objectives.views import encode, layer_set_views, token_mask
from contrastlab.objectives.families.multilayer import Params


class LayerSetViews(ContrastiveObjective):
    def views(self, model, batch):
        p = self.params
        token = p.level == "token"
        out, rows = encode(model, batch, hidden_states=True, attention_layers=p.layers if token else ())
        groups = layer_set_views(out.hidden_states, p.layers, p.level, dropout=model.dropout, rows=rows,
                                 mask=token_mask(batch) if token else None, k=p.k)
        return out.last_hidden_state[:, 0], groups


def build(params: Params, model) -> LayerSetViews:
    check_layers(params.contrast_layers(), model.num_layers)
    return LayerSetViews(params, model.hidden_size)
