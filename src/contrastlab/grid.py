"""The ablation grid as data: config.yaml's experiments x sweeps x seeds -> one row per cell.

An experiment is a named recipe: a family, its loss params, optional `model`/`train` overrides
and a `sweep` (param -> list of values; a dotted name such as `model.max_len` sweeps another
section). Its cells are the cartesian product of the sweep, named `<experiment>_<param><value>...`
(`token_k8_alpha0.2`); each cell runs once per seed. Adding a sweep value adds cells, no code.

Snakemake's Paramspace needs one column set shared by every row; families have different
parameters, so the grid is this explicit table instead.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass

from .cellconfig import CellConfig

SECTIONS = ("model", "train")  # config sections an experiment may override or sweep
RUNTIME_KEYS = ("device", "eval_batch_size", "log_every")
CELL_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Cell:
    name: str
    experiment: str
    family: str
    seed: int
    sweep: dict  # the swept values that name the cell
    config: dict  # CellConfig.to_dict(): what train/embed get

    @property
    def key(self) -> str:
        return f"{self.name}/seed{self.seed}"


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _set_dotted(cfg: dict, key: str, value) -> None:
    section, _, name = key.rpartition(".")
    target = cfg["loss"] if not section else cfg
    for part in section.split(".") if section else []:
        target = target.setdefault(part, {})
    target[name] = value


def experiment_cells(name: str, spec: dict, config: dict) -> list[Cell]:
    spec = dict(spec or {})
    family = spec.pop("family", name)
    sweep = spec.pop("sweep", {}) or {}
    unknown = set(spec) - {"loss", "compare_to", *SECTIONS}
    if unknown:
        raise ValueError(f"unknown key experiments.{name}.{sorted(unknown)[0]} "
                         f"(known: family, loss, sweep, compare_to, {', '.join(SECTIONS)})")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"experiments.{name}.sweep.{key} must be a non-empty list, got {values!r}")
    base = {"family": family, "loss": spec.get("loss") or {},
            **{s: _merge(config.get(s, {}), spec.get(s, {})) for s in SECTIONS},
            **{k: config.get("runtime", {})[k] for k in RUNTIME_KEYS if k in config.get("runtime", {})}}
    cells = []
    for values in itertools.product(*sweep.values()):
        swept = dict(zip(sweep, values))
        cell_name = name + "".join(f"_{k.rpartition('.')[2]}{_fmt(v)}" for k, v in swept.items())
        if not CELL_NAME.match(cell_name):
            raise ValueError(f"experiments.{name}: cell name {cell_name!r} has characters unsafe in a path")
        for seed in config.get("seeds", [1]):
            cfg = copy.deepcopy(base)
            for k, v in swept.items():
                _set_dotted(cfg, k, v)
            cfg.update(cell=cell_name, seed=int(seed))
            try:
                resolved = CellConfig.from_dict(cfg).to_dict()
            except (TypeError, ValueError) as e:
                raise ValueError(f"experiments.{name}: {e}") from e
            cells.append(Cell(cell_name, name, family, int(seed), swept, resolved))
    return cells


def expand_grid(config: dict) -> list[Cell]:
    """Every cell x seed of the config, in config order; cell names must be unique."""
    cells = [c for name, spec in (config.get("experiments") or {}).items()
             for c in experiment_cells(name, spec, config)]
    seen = {}
    for c in cells:
        if (c.name, c.seed) in seen and seen[(c.name, c.seed)] != c.experiment:
            raise ValueError(f"cell name {c.name!r} is produced by experiments {seen[(c.name, c.seed)]!r} "
                             f"and {c.experiment!r}: rename one")
        seen[(c.name, c.seed)] = c.experiment
    if len(seen) != len(cells):
        raise ValueError("an experiment's sweep produces the same cell twice (a repeated sweep value?)")
    return cells
