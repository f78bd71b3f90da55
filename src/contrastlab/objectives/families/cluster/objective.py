"""`cluster`: SupCon over k-means cluster means of the top-k tokens (see the package docstring)."""
from __future__ import annotations

from contrastlab.objectives.contrastive import ContrastiveObjective
from contrastlab.objectives.layers import check_layers
from contrastlab.objectives.views import cluster_views, top_tokens
from contrastlab.objectives.families.cluster import Params


class ClusterViews(ContrastiveObjective):
    def views(self, model, batch):
        p = self.params
        cls, tokens, mask = top_tokens(model, batch, p.layer, p.k)
        return cls, [cluster_views(tokens, mask, p.n_clusters, p.iters)]


def build(params: Params, model) -> ClusterViews:
    check_layers(params.contrast_layers(), model.num_layers)
    return ClusterViews(params, model.hidden_size)
