"""The prepared datasets a study needs: one per distinct tokenised data draw, each in a folder
named by everything that determines its content.

A cell x seed's prepared data is fixed by the cell's data section, its tokenizer (model.name),
model.max_len and the seed of its train draw (`data.draw_seed`: fixed = split_seed, run = the
run's seed, or an integer; contrastlab.data.train_draw_seed). `plan_preps` resolves the draw of
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

from .config import ConfigError, DataConfig
from .grid import Cell
from .layout import prepared_key

log = logging.getLogger("contrastlab.preps")


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


def resolved_data(data: DataConfig, seed: int) -> dict:
    """The data section of a cell x seed as its prepare job gets it: draw_seed an integer."""
    if not draws_from_train(data):
        draw = data.split_seed
    else:
        draw = {"fixed": data.split_seed, "run": seed}.get(data.draw_seed, data.draw_seed)
    return {**data.model_dump(), "draw_seed": draw}


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


def check_class_limits(cells: list[Cell], where: str) -> None:
    """The train-draw limits that depend on the number of classes (max_train >= few_shot_n x C,
    label_noise < (C - 1) / C), at DAG build when the config alone cannot tell: without data.labels
    the source's labels are read, only for a cell that sets such a limit. A hub dataset is checked by
    its prepare job (it may be downloadable only there)."""
    checked = set()
    for c in cells:
        data = c.config.data
        limited = data.label_noise >= 0.5 or (data.few_shot_n and data.max_train)
        text = data.model_dump_json(exclude={"draw_seed"})
        if data.labels or data.source == "hub" or not limited or text in checked:
            continue
        checked.add(text)
        from .data import DataError, class_names, draw_problem  # pandas: only for such a cell
        try:
            problem = draw_problem(data, len(class_names(data)))
        except DataError:
            continue  # the data itself is unreadable: the prepare job says where, with the row
        if problem:
            raise ConfigError(f"{where}: cell {c.name}: {problem}")
