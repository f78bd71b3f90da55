"""A config file, checked and planned: what the Snakefile needs to build the DAG.

`plan(config, source)` validates the whole config (contrastlab.plan.config), expands the grid
(contrastlab.plan.grid), runs the checks that need the model and the data files (contrastlab.plan.validate),
and returns the cells, the prepared datasets they share, who is compared with whom, and the
study's tables and figures (every family's checked against contrastlab.plan.contract). Torch-free: a
paper-sized DAG builds in about a second.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from contrastlab.objectives import families
from contrastlab.analysis.aggregate.outputs import COMMON, NEEDS_PROBES, TUNING
from contrastlab.plan.budget import warn_few_steps
from contrastlab.plan.config import ConfigError, DataConfig, StudyConfig, validate
from contrastlab.plan.contract import Output, check_outputs
from contrastlab.plan.grid import Cell, expand_grid
from contrastlab.plan.hfconfig import model_info
from contrastlab.plan.match_budget import match_budgets
from contrastlab.data.preps import Prep, plan_preps
from contrastlab.operations.runloop import read_seeds
from contrastlab.plan.tuning import Trial, check_tuned, plan_trials
from contrastlab.plan.validate import check_against_model, check_data_files, check_references, check_results_folder


@dataclass
class Plan:
    study: StudyConfig
    source: str  # the config file(s), for messages and the report
    cells: list[Cell]  # every cell x seed, config order
    preps: dict[str, Prep]
    prep_of: dict[tuple[str, int], str]  # (cell name, seed) -> prep key (contrastlab.data.preps)
    reference: dict[str, str]  # cell name -> the cell it is compared with (itself for the baseline)
    baseline: str  # the baseline cell
    outputs: list[Output] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)  # every tuning trial (contrastlab.plan.tuning); prep_of has theirs

    def trials_of(self, cell: str) -> list[Trial]:
        return [t for t in self.trials if t.arm == cell]

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.cells))

    def cell_names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.cells))

    def aggregate_modules(self) -> list[str]:
        return aggregate_modules(self.families, self.outputs)


def resolved_value(cell: Cell, key: str):
    """A cell's value of a sweep key: `k` is loss.k, `data.few_shot_n` its data section's."""
    config = cell.config.model_dump()
    section, _, name = key.partition(".") if "." in key else ("loss", "", key)
    value = config[section]
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set_data_keys(exp) -> set[str]:
    """The data keys an experiment sets itself: in its data section or its sweep."""
    return set(exp.data) | {k.split(".")[1] for k in exp.sweep if k.startswith("data.")}


def _differences(cell: Cell, ref: Cell, ref_sweep: list[str], deliberate: set[str]) -> list[str]:
    """The keys in which `cell` does not match a candidate reference: any data key (but those its
    experiment varies on purpose), and the reference experiment's sweep keys that the cell has too."""
    own, other = cell.config.data.model_dump(), ref.config.data.model_dump()
    keys = [f"data.{k}" for k in own if k not in deliberate and own[k] != other[k]]
    keys += [k for k in ref_sweep if not k.startswith("data.") and resolved_value(cell, k) is not None
             and resolved_value(cell, k) != resolved_value(ref, k)]
    return keys


def reference_cell(cell: Cell, cells: list[Cell], study: StudyConfig, where: str) -> str:
    """The one cell of the experiment `cell` is compared with (compare_to, else the baseline) that
    ran on the same data (the same test split, train draw, noise and few-shot) and has the same
    values of that experiment's sweep keys. The only data keys allowed to differ are those that
    change the train split alone (DataConfig.TRAIN_DRAW_KEYS) which the cell's experiment sets on
    purpose and the reference's does not (noisy CE against the clean baseline). ConfigError
    listing the candidates and how each differs when there is not exactly one."""
    exp = study.experiments[cell.experiment]
    target = exp.compare_to or study.baseline
    if cell.experiment == target:
        return cell.name
    ref_exp = study.experiments[target]
    deliberate = (_set_data_keys(exp) - _set_data_keys(ref_exp)) & set(DataConfig.TRAIN_DRAW_KEYS)
    candidates = list({c.name: c for c in cells if c.experiment == target}.values())
    diffs = {c.name: _differences(cell, c, sorted(ref_exp.sweep), deliberate) for c in candidates}
    matches = [name for name, d in diffs.items() if not d]
    if len(matches) == 1:
        return matches[0]
    of = f"experiments.{cell.experiment}.compare_to = {target!r}" if exp.compare_to else f"the baseline {target!r}"
    if matches:
        raise ConfigError(f"{where}: cell {cell.name}: {len(matches)} cells of {of} match it ({', '.join(matches)}): "
                          "sweep the keys that tell them apart here too, or compare with an experiment of one cell")

    def shown(key, ref):
        return f"{key} {resolved_value(cell, key)!r} vs {resolved_value(ref, key)!r}"
    listed = "; ".join(f"{c.name}: {', '.join(shown(k, c) for k in diffs[c.name][:3])}" for c in candidates[:4])
    more = f"; and {len(candidates) - 4} more" if len(candidates) > 4 else ""
    raise ConfigError(f"{where}: cell {cell.name}: no cell of {of} has the same data and sweep values (candidates: "
                      f"{listed}{more}); make them match, or compare with another experiment")


def report_outputs(cell_families, probes: bool = True, tuned: bool = False) -> list[Output]:
    """The report of a grid with cells of these families: the outputs of every study, then each
    family's (family order); the tuning curves when the study tunes. First checks every family's declarations (contrastlab.plan.contract), so
    a family that breaks the contract, or clashes with another, stops the plan by name."""
    check_outputs({"the aggregate": COMMON + TUNING, **{f"family {f}": families.outputs(f) for f in families.NAMES}})
    common = [o for o in COMMON if probes or o.name not in NEEDS_PROBES] + (TUNING if tuned else [])
    return common + [o for f in dict.fromkeys(cell_families) for o in families.outputs(f)]


def aggregate_modules(cell_families, outputs: list[Output]) -> list[str]:
    """What the aggregate job imports by name, for its code hash: each output's builder module,
    and each family's package (its Params and OUTPUTS reach the job through the job's params)."""
    return list(dict.fromkeys([*(families.spec(f).__name__ for f in cell_families), *(o.module for o in outputs)]))


def plan(config: dict, source: str = "config") -> Plan:
    study = validate(StudyConfig, config, source)
    check_results_folder(study, source)
    check_references(study, source)
    cells = match_budgets(study, expand_grid(study, source, read_seeds(study.results, study.schedule, source)),
                          source, lambda name: model_info(name).config)
    check_data_files(study, cells, source)
    check_against_model(study, cells, source)
    warn_few_steps(cells, source)
    trials = plan_trials(study, cells, source)
    preps, prep_of = plan_preps(cells + [t.cell for t in trials], study.data, source)
    unique = list({c.name: c for c in cells}.values())
    reference = {c.name: reference_cell(c, unique, study, source) for c in unique}
    check_tuned(study, reference, {c.name: c.experiment for c in unique}, source)
    first = {}
    for c in cells:
        first.setdefault(c.experiment, c.name)
    outputs = report_outputs([c.family for c in cells], probes=study.probe.enabled, tuned=bool(trials))
    return Plan(study, source, cells, preps, prep_of, reference, first[study.baseline], outputs, trials)
