"""The loss families of the grid: one package each under this folder, found by name.

Adding a family is adding a package `families/<name>/`; nothing else lists the families.

    __init__.py   `Params`: its `loss:` keys (a `contrastlab.plan.config.LossParams`), and `OUTPUTS`:
                  the tables and figures it adds to the report, if any, each a
                  `contrastlab.plan.contract.Output` naming its builder and caption
                  (`contract.family_output`: report.<name>, <name>.rst beside it). Torch-free: the DAG
                  build reads it.
    objective.py  `build(params, model) -> Objective` (contrastlab.objectives.objective). Only a cell's own
                  family's objective is imported by its training job, so only that code (and what
                  it imports) is in the cell's code hash (contrastlab.operations.provenance).
    report.py     the builders its `OUTPUTS` name, `builder(study, comp, cells, paths)`
                  (contrastlab.plan.contract); <name>.rst beside it: their captions.

A family's report imports the aggregate's helpers; the aggregate imports no family.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from types import ModuleType

from contrastlab.plan.config import ConfigError, LossParams, validate
from contrastlab.plan.contract import Output

NAMES: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))


def spec(family: str) -> ModuleType:
    """The family's package (its Params and OUTPUTS)."""
    if family not in NAMES:
        raise ConfigError(f"unknown family {family!r} (known: {', '.join(NAMES)})")
    return importlib.import_module(f"{__name__}.{family}")


def parse_params(family: str, loss: dict | None, where: str = "config", prefix: tuple = ("loss",)) -> LossParams:
    """The family's Params from a config mapping; ConfigError "<where>: <prefix>.<key> ..." otherwise."""
    return validate(spec(family).Params, loss or {}, where, prefix)


def objective_module(family: str) -> str:
    spec(family)
    return f"{__name__}.{family}.objective"


def build_objective(family: str, loss: dict | LossParams | None, model):
    """The family's Objective for `model` (a contrastlab.training.model.Classifier); `loss`: a config mapping,
    or the params a job parsed already (contrastlab.training.jobmodel)."""
    params = loss if isinstance(loss, LossParams) else parse_params(family, loss)
    return importlib.import_module(objective_module(family)).build(params, model)


def outputs(family: str) -> list[Output]:
    """The tables and figures the family adds (its OUTPUTS), each marked as the family's."""
    return [replace(o, family=family) for o in getattr(spec(family), "OUTPUTS", [])]

