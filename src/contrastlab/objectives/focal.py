"""`focal` (seed 003): focal CE (gamma) + weight * a contrastive term on the [CLS] views of `scl`.

The contrastive term is `contrast`: "supcon" (simple SupCon), "focal" (focal contrastive,
-(1 - pt)^gamma log pt over positives) or "margin" (relu(margin + cos_neg - cos_pos)); optional
projection head `proj_dim` (seed 003: 256). alpha 0 leaves focal CE alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import scl

DEPENDS = [*scl.DEPENDS, "objectives.scl"]


@dataclass
class Params(scl.Params):
    ce: str = "focal"
    focal_gamma: float = 2.0
    alpha: float = 0.5
    tau: float = 0.1
    contrast: str = "supcon"
    contrast_gamma: float = 2.0
    margin: float = 0.2


def build(params: Params, model) -> scl.SupConViews:
    return scl.build(params, model)
