"""The ablation grid as data: a config's experiments x sweeps x seeds -> one `Cell` per run.

An experiment is a named recipe: a family, its loss params, optional `data`/`model`/`train`
overrides and a `sweep` (key -> list of values; a loss key by name, a key of another section as
`data.few_shot_n`, `model.max_len`, `train.lr_head`). Its cells are the cartesian product of the
sweep, named `<experiment>_<key><value>...` with the keys in sorted order (`token_alpha0.2_k8`),
so that a name does not depend on how the YAML orders the keys: a formatter that sorts them
renames nothing and reruns nothing. Each cell runs once per seed.

A name is a folder (results/cells/<name>): letters, digits, _ . - only, not starting with a dot,
at most MAX_NAME characters, and unique when case is ignored (macOS and Windows file systems).
A sweep must make different runs: two cells that differ only in a key they do not read
(`train.epochs` under `max_steps`, `layer` under views "one") or in equal numbers (1 and 1.0) are
refused. The sweeps' size is counted before any cell is built, against `max_cells`.

Every error names the file, the key path (`experiments.token.sweep.k`), the value, the cell it
would have made and what is allowed.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from contrastlab.objectives import families
from contrastlab.plan.config import (SWEEP_SECTIONS, CellConfig, ConfigError, DataConfig, ModelConfig, StudyConfig, TrainConfig,
                     validate)

CELL_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
MAX_NAME = 128  # a cell's folder name; file systems stop at 255 bytes
NAME_RULE = f"letters, digits, _ . - only, not starting with a dot, at most {MAX_NAME} characters"
SECTION_MODELS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass(frozen=True)
class Cell:
    name: str
    experiment: str
    family: str
    seed: int
    sweep: dict  # swept key -> value: what names the cell
    config: CellConfig


def fmt_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(fmt_value(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_name(experiment: str, swept: dict) -> str:
    return experiment + "".join(f"_{k.rpartition('.')[2]}{fmt_value(v)}" for k, v in sorted(swept.items()))


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _set_dotted(target: dict, key: str, value) -> None:
    """target[a][b][c] = value for key "a.b.c"; a mapping that is unset or off (model.lora: null)
    is created, so sweeping model.lora.r turns LoRA on with that rank."""
    *path, name = key.split(".")
    for i, part in enumerate(path):
        if target.get(part) is None:
            target[part] = {}
        elif not isinstance(target[part], dict):
            raise ValueError(f"{'.'.join(path[:i + 1])} is {target[part]!r}, not a mapping with keys under it")
        target = target[part]
    target[name] = value


def _section_of(key: str) -> str:
    return key.split(".", 1)[0] if "." in key else "loss"


def _check_sweep(where: str, name: str, sweep: dict[str, list]) -> None:
    for key, values in sweep.items():
        section = _section_of(key)
        if key == "family":
            raise ConfigError(f"{where}: experiments.{name}.sweep.family: a family cannot be swept; write one "
                              "experiment per family (each is compared with the baseline on its own)")
        if "." in key and section not in SWEEP_SECTIONS:
            raise ConfigError(f"{where}: experiments.{name}.sweep.{key}: a dotted sweep key must start with one of "
                              f"{', '.join(SWEEP_SECTIONS)} (loss keys are written without a section)")
        if not values:
            raise ConfigError(f"{where}: experiments.{name}.sweep.{key}: an empty list makes no cells")
        seen = {}
        for v in values:
            r = json.dumps(v, sort_keys=True, default=str)
            if r in seen:
                raise ConfigError(f"{where}: experiments.{name}.sweep.{key}: the value {v!r} is listed twice "
                                  f"(each value makes its own cells, e.g. {cell_name(name, {key: v})})")
            seen[r] = v
    shorts = [k.rpartition(".")[2] for k in sweep]
    clash = sorted({s for s in shorts if shorts.count(s) > 1})
    if clash:
        raise ConfigError(f"{where}: experiments.{name}.sweep: keys {[k for k in sweep if k.endswith(clash[0])]} "
                          f"would give cells the same names (each is named by its last part, {clash[0]!r})")


def _where_set(name: str, section: str, field: str, values: dict) -> str:
    """The key path of the mapping a bad value came from: the sweep, else the experiment's own
    section (whose defaults come from the top-level section, valid by then)."""
    key = field if section == "loss" else f"{section}.{field}"
    if key in values:
        return f"experiments.{name}.sweep" + ("" if section == "loss" else f".{section}")
    return f"experiments.{name}.{section}"


def safe_name(name: str) -> bool:
    return bool(CELL_NAME.match(name)) and len(name) <= MAX_NAME


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 60 else f"{name[:40]!r}... ({len(name)} characters)"


def _identity(cfg: CellConfig, params) -> str:
    """What a cell runs: its config less its name and the keys it does not read."""
    d = cfg.model_dump(exclude={"cell", "seed"})
    for key in [*cfg.unread(), *(f"loss.{k}" for k in params.unread())]:
        section, _, field = key.partition(".")
        d[section].pop(field, None)
    return json.dumps(d, sort_keys=True)


def _check_distinct(where: str, name: str, made: list[tuple[str, dict, CellConfig, Any]]) -> None:
    """Two cells of one experiment that would run the same thing: name the sweep key and why."""
    seen = {}
    for cname, swept, cfg, params in made:
        other = seen.setdefault(_identity(cfg, params), (cname, swept))
        if other[0] == cname:
            continue
        unread = cfg.unread() | {f"loss.{k}": v for k, v in params.unread().items()}
        differ = [k for k in sorted(swept) if fmt_value(swept[k]) != fmt_value(other[1][k])]
        key = next((k for k in differ if (k if "." in k else f"loss.{k}") in unread), differ[0])
        dotted = key if "." in key else f"loss.{key}"
        why = (f"these cells do not read {dotted} ({unread[dotted]})" if dotted in unread else
               f"{other[1][key]!r} and {swept[key]!r} are the same value")
        raise ConfigError(f"{where}: experiments.{name}.sweep.{key}: cells {other[0]} and {cname} would be the same "
                          f"run: {why}; drop the key or the repeated value")


def count_cells(study: StudyConfig) -> int:
    return sum(math.prod(len(v) for v in exp.sweep.values()) for exp in study.experiments.values())


def experiment_cells(name: str, exp, study: StudyConfig, where: str, seeds_of: dict | None = None) -> list[Cell]:
    if not safe_name(name):
        raise ConfigError(f"{where}: experiments: the name {_shown(name)} names its cells' folders: {NAME_RULE}")
    family = exp.family or name
    if family not in families.NAMES:
        what = (f"experiments.{name}.family = {family!r}: unknown family" if exp.family else
                f"experiments.{name}: no family is given and {name!r} is not one (set family:)")
        raise ConfigError(f"{where}: {what} (known: {', '.join(families.NAMES)})")
    base = {s: _merge(getattr(study, s).model_dump(), getattr(exp, s)) for s in SWEEP_SECTIONS}
    keys = sorted(exp.sweep)
    cells, made = [], []
    for combo in itertools.product(*(exp.sweep[k] for k in keys)):
        swept = dict(zip(keys, combo))
        cname = cell_name(name, swept)
        if not safe_name(cname):
            raise ConfigError(f"{where}: experiments.{name}.sweep: its values make the cell name {_shown(cname)}, "
                              f"unsafe as a folder ({NAME_RULE})")
        sections: dict[str, Any] = {"loss": copy.deepcopy(exp.loss), **copy.deepcopy(base)}
        for key, value in swept.items():
            section = _section_of(key)
            try:
                _set_dotted(sections[section], key if section == "loss" else key.split(".", 1)[1], value)
            except ValueError as e:
                raise ConfigError(f"{where}: experiments.{name}.sweep.{key}: {section}.{e}") from None
        resolved = {}
        for section, data in sections.items():
            label = f"cell {cname}"
            try:
                if section == "loss":
                    resolved[section] = families.parse_params(family, data, label, ()).model_dump()
                else:
                    resolved[section] = validate(SECTION_MODELS[section], data, label, ()).model_dump()
            except ConfigError as e:
                field = next((p for p in e.loc if isinstance(p, str)), "")
                origin = _where_set(name, section, field, swept)
                detail = f"{origin}.{e.detail}" if field else f"{origin}: {e.detail}"
                raise ConfigError(f"{where}: {detail} (cell {cname})") from None
        made.append((cname, swept, CellConfig(cell=cname, family=family, **resolved),
                     families.parse_params(family, resolved["loss"])))
        for seed in (seeds_of or {}).get(cname, study.seed_list()):
            cfg = CellConfig(cell=cname, family=family, seed=seed, **resolved)
            cells.append(Cell(cname, name, family, seed, swept, cfg))
    _check_distinct(where, name, made)
    return cells


def expand_grid(study: StudyConfig, where: str = "config", seeds_of: dict[str, list[int]] | None = None) -> list[Cell]:
    """Every cell x seed of the study, in config order; cell names must be unique, ignoring case.
    seeds_of: a sequential study's seeds per cell (contrastlab.analysis.sequential); others run study.seed_list()."""
    for name, exp in study.experiments.items():
        _check_sweep(where, name, exp.sweep)
    n = count_cells(study)
    if n > study.max_cells:
        sizes = ", ".join(f"{name} {math.prod(len(v) for v in exp.sweep.values())}"
                          for name, exp in study.experiments.items() if exp.sweep)
        raise ConfigError(f"{where}: the sweeps make {n} cells ({sizes}), more than max_cells = {study.max_cells}: "
                          f"set max_cells: {n} if you mean it")
    cells = [c for name, exp in study.experiments.items() for c in experiment_cells(name, exp, study, where, seeds_of)]
    made_by = {}
    for c in cells:
        name, experiment = made_by.setdefault(c.name.lower(), (c.name, c.experiment))
        if name != c.name:
            raise ConfigError(f"{where}: experiments {experiment!r} and {c.experiment!r} make cells {name!r} and "
                              f"{c.name!r}, one folder on case-insensitive file systems (macOS, Windows): rename one")
        if experiment != c.experiment:
            raise ConfigError(f"{where}: experiments {experiment!r} and {c.experiment!r} both make a cell named "
                              f"{c.name!r}: rename one of them")
    return cells
