"""`cluster`: CE + alpha * SupCon over the k-means cluster means of each sample's top-k tokens.

The top-k tokens are those of `token` (same layer convention and k rule); each sample's tokens
are grouped into `n_clusters` by a batched torch k-means (`iters` Lloyd steps, deterministic
farthest-point init, detached assignments), and the cluster means, which carry gradient, are the
views [B, n_clusters, D]. Empty clusters (fewer real tokens than clusters) are padding views.
"""
from __future__ import annotations


from pydantic import Field, model_validator

from contrastlab.plan.config import ContrastParams
from contrastlab.plan.contract import family_output

OUTPUTS = [family_output(__name__, "cluster", "table", "Clustered token views: number of clusters")]


class Params(ContrastParams):
    k: int = Field(90, ge=1, description="top-attended tokens per sample, then clustered")
    n_clusters: int = Field(10, ge=1, description="clusters per sample (its views); at most k")
    iters: int = Field(10, ge=1, description="Lloyd iterations of the k-means")
    layer: int = Field(-1, description="encoder layer of the tokens (-1 the last)")
    alpha: float = Field(0.25, ge=0, description="weight of the contrastive term")

    @model_validator(mode="after")
    def _clusters_fit(self):
        if self.n_clusters > self.k:
            raise ValueError(f"loss.n_clusters = {self.n_clusters} is more than loss.k = {self.k}: "
                             "the k tokens cannot fill that many clusters")
        return self

    def contrast_layers(self) -> list[int]:
        return [self.layer]

    def views_label(self) -> str:
        return f"{self.n_clusters} cluster means of the top-{self.k} tokens"
