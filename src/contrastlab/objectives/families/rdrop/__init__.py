"""`rdrop`: CE1 + CE2 + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2 over two outputs of one input.

stages 1 (one-stage): ONE encoder pass; the head's dropout is drawn twice on the same [CLS].
stages 2 (two-stage): two encoder passes (different dropout masks everywhere), ~2x compute.
The KL reduction is `kl_reduction` (contrastlab.objectives.losses.symmetric_kl): "batchmean" (the per-sample
KL averaged over the effective batch; default), "sum" (summed over it: the R-Drop authors' code)
or "mean" (averaged over its B x C elements). Each equals its value on the whole effective batch,
whatever `grad_accum` splits it into.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contrastlab.plan.config import LossParams
from contrastlab.plan.contract import family_output

OUTPUTS = [family_output(__name__, "rdrop", "table", "R-Drop: one- vs two-stage, accuracy and cost"),
           family_output(__name__, "rdrop_cost", "figure", "R-Drop: one- vs two-stage cost")]


class Params(LossParams):
    alpha: float = Field(0.2, ge=0, description="weight of the symmetric KL")
    stages: Literal[1, 2] = Field(1, description="1: one encoder pass, the head's dropout twice; 2: two encoder passes")
    kl_reduction: Literal["batchmean", "sum", "mean"] = Field("batchmean", description="reduction of each KL")

    def form(self) -> str:
        return f"CE1 + CE2 + {self.alpha:g}·KL ({self.kl_reduction})"

    def encoder_passes(self) -> int:
        return self.stages
