"""A config file, checked and planned: what the Snakefile needs to build the DAG.

`plan(config, source)` validates the whole config (contrastlab.config), expands the grid
(contrastlab.grid), runs the checks that need the model and the data files (contrastlab.validate),
and returns the cells, the prepared datasets they share, who is compared with whom, and the
study's tables and figures (every family's checked against contrastlab.contract). Torch-free: a
paper-sized DAG builds in about a second.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import families
from .aggregate.outputs import COMMON, NEEDS_PROBES
from .config import DataConfig, StudyConfig, validate
from .contract import Output, check_outputs
from .grid import Cell, expand_grid
from .validate import check_against_model, check_data_files, check_references


@dataclass
class Prep:
    """One tokenised dataset: what the prepare rule's params hold (and nothing else, so that a new
    experiment on the same data and tokenizer reuses it)."""
    key: str
    data: dict
    tokenizer: str
    max_len: int


@dataclass
class Plan:
    study: StudyConfig
    source: str  # the config file(s), for messages and the report
    cells: list[Cell]  # every cell x seed, config order
    preps: dict[str, Prep]
    prep_of: dict[str, str]  # cell name -> prep key
    reference: dict[str, str]  # cell name -> the cell it is compared with (itself for the baseline)
    baseline: str  # the baseline cell
    outputs: list[Output] = field(default_factory=list)

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.cells))

    def cell_names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.cells))

    def aggregate_modules(self) -> list[str]:
        return aggregate_modules(self.families, self.outputs)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(os.path.normpath(name))).strip("-")


def prep_key(cell: Cell, study_data: DataConfig) -> str:
    """<model>-len<max_len>, plus the data keys in which the cell differs from the study's data
    section (a swept few_shot_n: `embedded-len64-few_shot_n20`)."""
    m = cell.config.model
    base, own = study_data.model_dump(), cell.config.data.model_dump()
    differs = "".join(f"-{k}{own[k]}" for k in sorted(own) if own[k] != base[k] and not isinstance(own[k], dict))
    key = f"{_slug(m.name)}-len{m.max_len}{differs}"
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", key)


def resolved_value(cell: Cell, key: str):
    """A cell's value of a sweep key: `k` is loss.k, `data.few_shot_n` its data section's."""
    config = cell.config.model_dump()
    section, _, name = key.partition(".") if "." in key else ("loss", "", key)
    value = config[section]
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def reference_cell(cell: Cell, cells: list[Cell], experiment: str) -> str:
    """The cell of `experiment` that `cell` is compared with: the one whose swept values `cell`
    also has (the CE arm of the same few-shot size and noise), else that experiment's first cell."""
    candidates = list(dict.fromkeys((c.name, tuple(sorted(c.sweep.items(), key=str))) for c in cells
                                    if c.experiment == experiment))
    for name, sweep in candidates:
        if sweep and all(resolved_value(cell, k) == v for k, v in sweep):
            return name
    return candidates[0][0]


def report_outputs(cell_families, probes: bool = True) -> list[Output]:
    """The report of a grid with cells of these families: the outputs of every study, then each
    family's (family order). First checks every family's declarations (contrastlab.contract), so
    a family that breaks the contract, or clashes with another, stops the plan by name."""
    check_outputs({"the aggregate": COMMON, **{f"family {f}": families.outputs(f) for f in families.NAMES}})
    common = [o for o in COMMON if probes or o.name not in NEEDS_PROBES]
    return common + [o for f in dict.fromkeys(cell_families) for o in families.outputs(f)]


def aggregate_modules(cell_families, outputs: list[Output]) -> list[str]:
    """What the aggregate job imports by name, for its code hash: each output's builder module,
    and each family's package (its Params and OUTPUTS reach the job through the job's params)."""
    return list(dict.fromkeys([*(families.spec(f).__name__ for f in cell_families), *(o.module for o in outputs)]))


def plan(config: dict, source: str = "config") -> Plan:
    study = validate(StudyConfig, config, source)
    check_references(study, source)
    cells = expand_grid(study, source)
    check_data_files(study, cells, source)
    check_against_model(study, cells, source)
    preps, prep_of = {}, {}
    for c in cells:
        key = prep_key(c, study.data)
        prep = Prep(key, c.config.data.model_dump(), c.config.model.name, c.config.model.max_len)
        if key in preps and preps[key] != prep:  # e.g. two data overrides that differ only in a nested key
            key = f"{key}-{len(preps)}"
            prep.key = key
        preps.setdefault(key, prep)
        prep_of[c.name] = key
    reference = {c.name: reference_cell(c, cells, study.experiments[c.experiment].compare_to or study.baseline)
                 for c in cells}
    first = {}
    for c in cells:
        first.setdefault(c.experiment, c.name)
    outputs = report_outputs([c.family for c in cells], probes=study.probe.enabled)
    return Plan(study, source, cells, preps, prep_of, reference, first[study.baseline], outputs)
