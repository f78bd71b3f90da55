"""`simcse`: CE + alpha * unsupervised SimCSE beside it (labels are not used by the term).

Two dropout views of each sample's final [CLS] are each other's only positive; every other view
in the contrast set (and in the memory, if on) is a negative (NT-Xent over 2B views, tau 0.05).
stages 2 (default, as in SimCSE): two encoder passes, so the views differ by the encoder's
dropout; CE is on the first. stages 1: one pass, the head's dropout drawn twice (cheap, weaker).
alpha 0.1 is contrastlab's choice (no reference value).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contrastlab.plan.config import ContrastParams


class Params(ContrastParams):
    SUPERVISED = False  # a sample's two views are each other's only positive
    TERM = "SimCSE"
    tau: float = Field(0.05, gt=0, description="temperature")
    alpha: float = Field(0.1, ge=0, description="weight of the SimCSE term")
    stages: Literal[1, 2] = Field(2, description="2: two encoder passes (SimCSE); 1: the head's dropout twice")

    def encoder_passes(self) -> int:
        return self.stages
