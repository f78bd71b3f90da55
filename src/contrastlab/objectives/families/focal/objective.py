"""`focal`: the views of `scl` under focal CE and a chosen contrastive term."""
from __future__ import annotations

from contrastlab.objectives.families.scl.objective import build as build_scl
from contrastlab.objectives.families.focal import Params


def build(params: Params, model):
    return build_scl(params, model)
