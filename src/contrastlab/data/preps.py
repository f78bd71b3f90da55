"""The prepared datasets a study needs: one per distinct tokenised data draw, each in a folder
named by everything that determines its content.

A cell x seed's prepared data is fixed by the cell's data section, its tokenizer (model.name),
model.max_len and the seed of its train draw (`data.draw_seed`: fixed = split_seed, run = the
run's seed, or an integer; draw_seed_of). `plan_preps` resolves the draw of
every cell x seed and names each distinct dataset by a readable part (`<model>-len<max_len>`, the
data keys in which it differs from the study's data section) and a hash of all of it
(layout.prepared_key). So two studies given one results folder never overwrite each other's
prepared data, cells whose data differ only in a nested key get their own, and the key of a
dataset does not depend on the order of the experiments.

Where nothing is drawn from train (no few_shot_n, max_train or label_noise) the draw seed changes
nothing, so it resolves to split_seed and every seed shares one prepare.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contrastlab.plan.config import ConfigError, DataConfig
from contrastlab.plan.layout import prepared_key

if TYPE_CHECKING:  # the prepare job imports this module: it needs no grid, families or torch
    from contrastlab.plan.grid import Cell

log = logging.getLogger("contrastlab.data.preps")


@dataclass(frozen=True)
class Prep:
    """One tokenised dataset: what the prepare rule's params hold (and nothing else, so that a new
    experiment on the same data and tokenizer reuses it). `data.draw_seed` is resolved (an int)."""
    key: str
    data: dict
    tokenizer: str
    max_len: int


def draws_from_train(data: DataConfig) -> bool:
    """Whether the train split is a seeded draw (so that data.draw_seed matters)."""
    return data.few_shot_n is not None or data.max_train is not None or data.label_noise > 0


def draw_seed_of(data: DataConfig, run_seed: int | None = None) -> int:
    """The seed of the train draw: data.draw_seed, fixed meaning split_seed and run the run's seed
    (resolved when the study is planned: a prepare job gets an integer)."""
    if data.draw_seed == "run" and run_seed is None:
        raise ValueError("data.draw_seed = 'run' needs the run's seed (contrastlab.data.preps.resolved_data)")
    return {"fixed": data.split_seed, "run": run_seed}.get(data.draw_seed, data.draw_seed)


def resolved_data(data: DataConfig, seed: int) -> dict:
    """The data section of a cell x seed as its prepare job gets it: draw_seed an integer (split_seed
    where nothing is drawn, so that every seed shares one prepare)."""
    return {**data.model_dump(), "draw_seed": draw_seed_of(data, seed) if draws_from_train(data) else data.split_seed}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(os.path.normpath(name))).strip("-")


def _label(cell: Cell, data: dict, study_data: dict) -> str:
    """<model>-len<max_len>, plus the scalar data keys in which the cell differs from the study's
    data section (a swept few_shot_n: `embedded-len64-few_shot_n20`)."""
    m = cell.config.model
    differs = "".join(f"-{k}{data[k]}" for k in sorted(data) if data[k] != study_data.get(k)
                      and not isinstance(data[k], dict))
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"{_slug(m.name)}-len{m.max_len}{differs}")


def plan_preps(cells: list[Cell], study_data: DataConfig, where: str = "config"
               ) -> tuple[dict[str, Prep], dict[tuple[str, int], str]]:
    """({key: Prep}, {(cell name, seed): key}): one Prep per distinct prepared dataset."""
    base = resolved_data(study_data, 0)
    preps, prep_of, warned = {}, {}, set()
    for c in cells:
        data = c.config.data
        if data.draw_seed == "run" and not draws_from_train(data) and c.name not in warned:
            warned.add(c.name)
            log.warning("cell %s: data.draw_seed is 'run' but nothing is drawn from train (no few_shot_n, "
                        "max_train or label_noise), so every seed trains on the same data", c.name)
        resolved = resolved_data(data, c.seed)
        identity = {"data": resolved, "tokenizer": c.config.model.name, "max_len": c.config.model.max_len}
        key = prepared_key(_label(c, resolved, base), identity)
        preps.setdefault(key, Prep(key, resolved, c.config.model.name, c.config.model.max_len))
        prep_of[(c.name, c.seed)] = key
    check_class_limits(cells, where)
    return preps, prep_of


def draw_problem(cfg: DataConfig, n_classes: int) -> str | None:
    """What makes a train draw lie, given the class count: a max_train that cuts the few-shot set,
    or symmetric noise under which a row's true label is no more frequent than each wrong one
    (1 - share <= share / (C - 1), i.e. share >= (C - 1) / C)."""
    if cfg.few_shot_n and cfg.max_train and cfg.max_train < cfg.few_shot_n * n_classes:
        return (f"data.max_train = {cfg.max_train} would cut the few-shot train set (few_shot_n = {cfg.few_shot_n} "
                f"per class x {n_classes} classes = {cfg.few_shot_n * n_classes} rows) without a word; raise max_train "
                "or leave it out (few_shot_n sets the train size)")
    share = cfg.label_noise
    if share >= (n_classes - 1) / n_classes:
        return (f"data.label_noise = {share:g} with {n_classes} classes leaves a row's true label ({1 - share:.0%}) "
                f"no more likely than each wrong one ({share / (n_classes - 1):.0%}): the train labels would carry "
                f"no signal or an inverted one; use less than {(n_classes - 1) / n_classes:.3g}")
    return None


def check_class_limits(cells: list[Cell], where: str) -> None:
    """draw_problem at DAG build, for every cell that sets such a limit: the class count is that of
    data.labels, else the source's labels are read (pandas: only for such a cell). A hub dataset is
    checked by its prepare job (it may be downloadable only there), as is a file that cannot be read
    (the job names its row)."""
    checked = set()
    for c in cells:
        data = c.config.data
        text = data.model_dump_json(exclude={"draw_seed"})
        if not (data.label_noise >= 0.5 or (data.few_shot_n and data.max_train)) or text in checked:
            continue
        checked.add(text)
        if data.labels:
            n_classes = len(data.labels)
        elif data.source == "hub":
            continue
        else:
            from contrastlab.data.splits import DataError, class_names
            try:
                n_classes = len(class_names(data))
            except DataError:
                continue
        problem = draw_problem(data, n_classes)
        if problem:
            raise ConfigError(f"{where}: cell {c.name}: {problem}")
