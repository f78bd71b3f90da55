"""`token`: SupCon over each sample's top-k [CLS]-attended tokens (see the package docstring)."""
from __future__ import annotations

from contrastlab.objectives.contrastive import ContrastiveObjective
from contrastlab.objectives.layers import check_layers
from contrastlab.objectives.views import top_tokens
from contrastlab.objectives.families.token import Params


class TokenViews(ContrastiveObjective):
    def views(self, model, batch):
        cls, views, mask = top_tokens(model, batch, self.params.layer, self.params.k)
        return cls, [(views, mask)]


def build(params: Params, model) -> TokenViews:
    check_layers(params.contrast_layers(), model.num_layers)
    return TokenViews(params, model.hidden_size)
