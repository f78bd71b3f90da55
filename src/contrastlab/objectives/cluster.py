"""`cluster`: CE + alpha * SupCon over the k-means cluster means of each sample's top-k tokens.

The top-k tokens are those of `token` (same layer convention and k rule); each sample's tokens
are grouped into `n_clusters` by a batched torch k-means (`iters` Lloyd steps, deterministic
farthest-point init, detached assignments), and the cluster means, which carry gradient, are the
views [B, n_clusters, D]. Empty clusters (fewer real tokens than clusters) are padding views.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..views import cluster_views
from .composite import ContrastiveObjective, ContrastParams
from .scl import check_layers
from .token import top_tokens

DEPENDS = ["losses", "views", "attention", "objectives.composite", "objectives.scl", "objectives.token"]


@dataclass
class Params(ContrastParams):
    k: int = 90
    n_clusters: int = 10
    iters: int = 10
    layer: int = -1
    alpha: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        for key in ("k", "n_clusters", "iters"):
            if getattr(self, key) < 1:
                raise ValueError(f"loss.{key} must be >= 1, got {getattr(self, key)}")


class ClusterViews(ContrastiveObjective):
    def views(self, model, batch):
        p = self.params
        cls, tokens, mask = top_tokens(model, batch, p.layer, p.k)
        return cls, [cluster_views(tokens, mask, p.n_clusters, p.iters)]


def build(params: Params, model) -> ClusterViews:
    check_layers([params.layer], model)
    return ClusterViews(params, model.hidden_size)
