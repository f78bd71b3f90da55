"""A config file, checked and planned: what the Snakefile needs to build the DAG.

`plan(config, source)` validates the whole config (contrastlab.config), expands the grid
(contrastlab.grid), runs the checks that need the model and the data files (contrastlab.validate),
and returns the cells, the prepared datasets they share, who is compared with whom, and the
study's tables and figures. Torch-free: a paper-sized DAG builds in about a second.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .aggregate.outputs import planned_outputs
from .config import StudyConfig, validate
from .grid import Cell, expand_grid
from .layout import Output
from .preps import Prep, plan_preps
from .validate import check_against_model, check_data_files, check_references


@dataclass
class Plan:
    study: StudyConfig
    source: str  # the config file(s), for messages and the report
    cells: list[Cell]  # every cell x seed, config order
    preps: dict[str, Prep]
    prep_of: dict[tuple[str, int], str]  # (cell name, seed) -> prep key (contrastlab.preps)
    reference: dict[str, str]  # cell name -> the cell it is compared with (itself for the baseline)
    baseline: str  # the baseline cell
    outputs: list[Output] = field(default_factory=list)

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.cells))

    def cell_names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.cells))


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


def plan(config: dict, source: str = "config") -> Plan:
    study = validate(StudyConfig, config, source)
    check_references(study, source)
    cells = expand_grid(study, source)
    check_data_files(study, cells, source)
    check_against_model(study, cells, source)
    preps, prep_of = plan_preps(cells, study.data, source)
    reference = {c.name: reference_cell(c, cells, study.experiments[c.experiment].compare_to or study.baseline)
                 for c in cells}
    first = {}
    for c in cells:
        first.setdefault(c.experiment, c.name)
    outputs = planned_outputs([c.family for c in cells], probes=study.probe.enabled)
    return Plan(study, source, cells, preps, prep_of, reference, first[study.baseline], outputs)
