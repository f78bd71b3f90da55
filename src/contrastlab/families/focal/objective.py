"""`focal`: the views of `scl` under focal CE and a chosen contrastive term."""
from __future__ import annotations

from ..scl.objective import build as build_scl
from . import Params


def build(params: Params, model):
    return build_scl(params, model)
