"""The same tuning budget for every arm: `tune:` -> each cell's trials, and the rule that picks one.

A cell of an experiment with a `tune` section (its own, else the study's) is an arm. It gets
`tune.trials` configurations of `tune.space`, drawn with `tune.seed` (`draw_values`): every arm
with the same space gets the same draws, so a method and its baseline try the same learning
rates. Each trial is the cell's config with the drawn values set, cut to the trial budget
(`tune.max_steps`, `tune.max_train`) and trained once with seed `tune.seed`, scored on the
validation split only (contrastlab.training.train, `score_test=False`: the job never loads the test
split). `select` picks each arm's best trial; its values (never the budget) are then set on the
cell, which runs with the study's seeds and is tested once (contrastlab.plan.tuned, in the train job).

A comparison is fair only if both arms had the same budget: a tuned cell compared with an
untuned reference, or with one tuned with other trials or budgets, stops the DAG build
(`check_tuned`). Torch-free: the DAG build imports it.
"""
from __future__ import annotations

import difflib
import itertools
import math
import zlib
from dataclasses import dataclass

import numpy as np

from contrastlab.objectives import families
from contrastlab.plan.config import TUNE_SECTIONS, CellConfig, ConfigError, ModelConfig, StudyConfig, TrainConfig, TuneConfig
from contrastlab.plan.grid import Cell
from contrastlab.plan.tuned import apply_values

SECTION_FIELDS = {"model": ModelConfig, "train": TrainConfig}
BUDGET = ("trials", "method", "max_steps", "max_train")  # what two compared arms must share


@dataclass(frozen=True)
class Trial:
    arm: str  # the cell it tunes
    index: int  # 0-based
    values: dict  # space key -> the value tried
    cell: Cell  # what the trial trains: named "<arm>/trial<index>", seed tune.seed


def tune_of(study: StudyConfig, experiment: str) -> TuneConfig | None:
    """An experiment's tuning: its own section, else the study's, else none."""
    return study.experiments[experiment].tune or study.tune


def _round(x: float) -> float:
    return float(f"{x:.4g}")  # readable in tables and configs; far finer than any tuning resolves


def _draw(rng: np.random.Generator, spec) -> object:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    lo, hi = (math.log(spec.low), math.log(spec.high)) if spec.log else (spec.low, spec.high)
    x = rng.uniform(lo, hi)
    x = math.exp(x) if spec.log else x
    if isinstance(spec.low, int) and isinstance(spec.high, int):
        return min(spec.high, max(spec.low, round(x)))
    return _round(x)


def draw_values(tune: TuneConfig) -> list[dict]:
    """The `tune.trials` configurations ({key: value}), deterministic in tune.seed. random: each key
    is drawn `trials` times from a stream of its own (seeded by tune.seed and the key); grid: every
    point of the lists' product, or a seeded subset of `trials` of them, in grid order."""
    rng = np.random.default_rng(tune.seed)
    keys = sorted(tune.space)
    if tune.method == "grid":
        points = list(itertools.product(*(tune.space[k] for k in keys)))
        picked = sorted(rng.choice(len(points), tune.trials, replace=False)) if tune.trials < len(points) else \
            range(len(points))
        return [dict(zip(keys, points[i])) for i in picked]
    # each key from its own stream: an arm whose space adds a key (loss.alpha) tries the same
    # learning rates as its baseline
    streams = {k: np.random.default_rng([tune.seed, zlib.crc32(k.encode())]) for k in keys}
    columns = {k: [_draw(streams[k], tune.space[k]) for _ in range(tune.trials)] for k in keys}
    return [{k: columns[k][i] for k in keys} for i in range(tune.trials)]


def _check_space(where: str, path: str, tune: TuneConfig, exp, family: str) -> None:
    """Every space key names a field that exists, is not swept too, and is not the trial budget."""
    for key in tune.space:
        section, _, name = key.partition(".")
        at = f"{where}: {path}.space.{key}"
        if section == "data":
            raise ConfigError(f"{at}: data keys cannot be tuned (they change the train draw or the test split); "
                              f"tune one of {', '.join(f'{s}.<key>' for s in TUNE_SECTIONS)}")
        if section not in TUNE_SECTIONS or not name:
            raise ConfigError(f"{at}: a tuned key is a path {' or '.join(f'{s}.<key>' for s in TUNE_SECTIONS)}")
        first = name.split(".")[0]
        known = list(SECTION_FIELDS[section].model_fields) if section != "loss" else \
            list(families.spec(family).Params.model_fields)
        if first not in known:
            close = difflib.get_close_matches(first, known, n=1)
            guess = f"; did you mean {section}.{close[0]}?" if close else ""
            raise ConfigError(f"{at}: unknown key{guess} (known: {', '.join(known)})")
        swept = key if section != "loss" else name
        if swept in exp.sweep or key in exp.sweep:
            raise ConfigError(f"{at}: also swept by {path.rsplit('.', 1)[0]}.sweep; a key is swept (its own cells) or "
                              "tuned (each cell picks its value), not both")
        if key == "train.max_steps" and tune.max_steps is not None:
            raise ConfigError(f"{at}: every trial runs tune.max_steps = {tune.max_steps} steps, so the step count "
                              "cannot be tuned as well; drop one")


def trial_config(cfg: CellConfig, tune: TuneConfig, values: dict, index: int) -> CellConfig:
    """What trial `index` of a cell trains: the tried values, the trial budget, seed tune.seed."""
    d = apply_values(cfg, values).model_dump()
    if tune.max_steps is not None:
        d["train"]["max_steps"] = tune.max_steps
    if tune.max_train is not None:
        d["data"]["max_train"] = tune.max_train
    return CellConfig.model_validate({**d, "seed": tune.seed, "cell": f"{cfg.cell}/trial{index}"})


def plan_trials(study: StudyConfig, cells: list[Cell], where: str = "config") -> list[Trial]:
    """Every trial of every tuned cell (config order). ConfigError naming `tune.space.<key>` for a key
    that does not exist, is swept, or gives a value the key does not allow."""
    trials, drawn = [], {}
    for name, exp in study.experiments.items():
        tune = tune_of(study, name)
        if tune is not None:
            path = f"experiments.{name}.tune" if exp.tune else "tune"
            _check_space(where, path, tune, exp, exp.family or name)
            drawn[name] = (path, tune, draw_values(tune))
    for cell in {c.name: c for c in cells}.values():
        if cell.experiment not in drawn:
            continue
        path, tune, draws = drawn[cell.experiment]
        for i, values in enumerate(draws):
            try:
                cfg = trial_config(cell.config, tune, values, i)
            except ConfigError as e:
                raise ConfigError(f"{where}: {path}.space: trial {i} of cell {cell.name} ({_shown(values)}): "
                                  f"{e.detail}") from None
            trials.append(Trial(cell.name, i, values, Cell(cfg.cell, cell.experiment, cell.family, tune.seed,
                                                           cell.sweep, cfg)))
    return trials


def _shown(values: dict) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in values.items())


def check_tuned(study: StudyConfig, reference: dict[str, str], experiment_of: dict[str, str], where: str) -> None:
    """Each compared pair of cells had the same tuning budget (trials, method, max_steps,
    max_train), or neither was tuned: a tuned method against an untuned baseline is the most
    common flaw of an ablation."""
    for cell, ref in reference.items():
        exp, ref_exp = experiment_of[cell], experiment_of[ref]
        ours, theirs = tune_of(study, exp), tune_of(study, ref_exp)
        if ours is None and theirs is None:
            continue
        if ours is None or theirs is None:
            tuned, untuned = (exp, ref_exp) if theirs is None else (ref_exp, exp)
            raise ConfigError(f"{where}: experiments.{tuned}.tune: cell {cell} is compared with {ref}, but "
                              f"{untuned} is not tuned; give it the same tune budget (or set tune study-wide)")
        differ = [k for k in BUDGET if getattr(ours, k) != getattr(theirs, k)]
        if differ:
            k = differ[0]
            raise ConfigError(f"{where}: experiments.{exp}.tune.{k} = {getattr(ours, k)!r} but its reference "
                              f"{ref_exp} has {getattr(theirs, k)!r}: compared arms need the same tuning budget "
                              f"({', '.join(BUDGET)})")


def select(scores: list[dict]) -> int:
    """The index of the best trial: highest validation accuracy, then lowest validation loss, then
    the first (scores: each trial's metrics, in trial order)."""
    def key(i):
        s = scores[i]
        loss = s.get("val_loss")
        return (-s["val_accuracy"], loss if loss is not None and not math.isnan(loss) else math.inf, i)
    return min(range(len(scores)), key=key)


def write_selection(metrics_paths: list[str], values: list[dict], out: str, cell: dict | None = None) -> dict:
    """Read each trial's validation metrics (trial order), pick the best (`select`) and write
    {trial, values, val_accuracy, trials: [scores]} to `out`, what the tuned cell's train jobs read;
    given the cell's config, also its loss params ("params") and formula ("form") with the selected
    values (the tables show those, not the untuned ones)."""
    import json

    from contrastlab.operations.io import write_json

    scores = [json.loads(open(p).read()) for p in metrics_paths]
    best = select(scores)
    selection = {"trial": best, "values": values[best], "val_accuracy": scores[best]["val_accuracy"],
                 "trials": [{"trial": i, "values": v, "val_accuracy": s["val_accuracy"], "val_loss": s.get("val_loss")}
                            for i, (v, s) in enumerate(zip(values, scores))]}
    if cell is not None:
        tuned = apply_values(CellConfig.model_validate(cell), values[best])
        selection |= {"params": tuned.loss, "form": families.parse_params(tuned.family, tuned.loss).form()}
    write_json(out, selection)
    return selection


__all__ = ["Trial", "apply_values", "check_tuned", "draw_values", "plan_trials", "select", "tune_of",
           "write_selection"]
