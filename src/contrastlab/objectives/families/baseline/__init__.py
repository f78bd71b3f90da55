"""`baseline`: cross-entropy on the head's logits over the final-layer [CLS] (optionally label-smoothed)."""
from __future__ import annotations

from pydantic import Field

from contrastlab.plan.config import LossParams


class Params(LossParams):
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy")

    def form(self) -> str:
        return "CE" if not self.label_smoothing else f"CE (label smoothing {self.label_smoothing:g})"
