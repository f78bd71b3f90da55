"""`focal` (seed 003): focal CE (gamma) + weight * a contrastive term on the [CLS] views of `scl`.

The contrastive term is `contrast`: "supcon" (simple SupCon), "focal" (focal contrastive,
-(1 - pt)^gamma log pt over positives) or "margin" (relu(margin + cos_neg - cos_pos)); optional
projection head `proj_dim` (seed 003: 256). alpha 0 leaves focal CE alone.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contrastlab.objectives.families.scl import Params as SclParams


class Params(SclParams):
    ce: Literal["ce", "focal"] = Field("focal", description="classification term: focal CE (default) or CE")
    alpha: float = Field(0.5, ge=0, description="weight of the contrastive term")
    tau: float = Field(0.1, gt=0, description="temperature of supcon / focal")
