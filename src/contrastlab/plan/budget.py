"""A cell's optimizer steps, bounded when the plan is made, and a warning when they are few.

Rule of thumb: a cell that takes fewer than MIN_STEPS optimizer steps, or fewer than
MIN_STEPS_PER_CLASS per class, may barely learn, and its comparisons then say little (a
five-class study of 600 texts at batch 32 x 2 ran 21 steps and tested near chance; issue 23).
The bound is an upper one, so the warning never fires on a cell that has enough steps: it uses
`train.max_steps` when set, else epochs x ceil(train rows / effective batch), the train rows
bounded by `max_train`, `few_shot_n` x classes, or the train file's line count (less the test and
validation shares carved out of it). Where none is known without reading the data (a hub
dataset, a compressed file), nothing is said. Torch- and pandas-free: the DAG build runs it.
"""
from __future__ import annotations

import bz2
import logging
import math
from pathlib import Path

from contrastlab.plan.config import DataConfig

log = logging.getLogger("contrastlab.plan.budget")

MIN_STEPS = 50
MIN_STEPS_PER_CLASS = 10
EMBEDDED_CLASSES = 2  # the embedded corpus's labels, rotten and fresh (contrastlab.data.sources.EMBEDDED_LABELS)
LINE_COUNTED = (".csv", ".tsv", ".jsonl")  # one row per line at most (a header or quoted newlines only lower it)
MAX_COUNTED_BYTES = 256 << 20  # a larger train file is not counted on every DAG build (nor likely to give few steps)


def _lines(path: Path, opener=open) -> int | None:
    """Lines in the file (its newlines + 1, for a last line without one)."""
    try:
        with opener(path, "rb") as f:
            return 1 + sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None


def _source_rows(data: DataConfig) -> int | None:
    """At most this many rows in the train source, before any split is carved out of it."""
    if data.source == "embedded":
        from contrastlab.data.sources import EMBEDDED_FILE, embedded_path  # the file's path only; the module reads nothing here
        return _lines(embedded_path(), bz2.open) if EMBEDDED_FILE.endswith(".bz2") else _lines(embedded_path())
    if data.source == "files":
        path = Path(data.files["train"]).expanduser()
        if path.suffix.lower() in LINE_COUNTED and path.stat().st_size <= MAX_COUNTED_BYTES:
            return _lines(path)
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq
            try:
                return pq.read_metadata(path).num_rows
            except Exception:  # not a valid parquet file: the prepare job says so with the file's name
                return None
    return None


def classes_of(data: DataConfig) -> int | None:
    return len(data.labels) if data.labels else EMBEDDED_CLASSES if data.source == "embedded" else None


def train_rows_at_most(data: DataConfig, rows: int | None = None) -> int | None:
    """An upper bound of the train split's size from the config's caps; `rows`: the source's rows."""
    given = set(data.files or {}) if data.source == "files" else set()
    if rows is not None:
        rows = math.ceil(rows * (1 if "test" in given else 1 - data.test_fraction))
        rows = math.ceil(rows * (1 if given & {"val", "valid", "validation", "dev"} else 1 - data.val_fraction))
    classes = classes_of(data)
    caps = [rows, data.max_train, data.few_shot_n * classes if data.few_shot_n and classes else None]
    known = [c for c in caps if c is not None]
    return min(known) if known else None


def steps_at_most(cfg, rows: int | None) -> int | None:
    t = cfg.train
    if t.max_steps:
        return t.total_steps(0)
    return None if rows is None else t.total_steps(math.ceil(rows / (t.batch_size * t.grad_accum)))


def warn_few_steps(cells, where: str) -> list[str]:
    """Log (and return) one warning per group of cells that take fewer steps than the rule allows."""
    groups: dict[str, list[str]] = {}
    counted: dict[str, int | None] = {}
    for cell in {c.name: c for c in cells}.values():
        cfg = cell.config
        classes = classes_of(cfg.data)
        floor = max(MIN_STEPS, MIN_STEPS_PER_CLASS * (classes or 0))
        rows = train_rows_at_most(cfg.data)
        steps = steps_at_most(cfg, rows)
        if steps is None or steps < floor:  # the caps alone do not clear it: count the file's rows
            key = cfg.data.model_dump_json()
            if key not in counted:
                counted[key] = _source_rows(cfg.data)
            rows = train_rows_at_most(cfg.data, counted[key])
            steps = steps_at_most(cfg, rows)
        if steps is None or steps >= floor:
            continue
        t = cfg.train
        how = ("train.max_steps" if t.max_steps else
               f"{t.epochs} epoch(s) x {math.ceil(rows / (t.batch_size * t.grad_accum))} steps of "
               f"{t.batch_size} x {t.grad_accum} examples over at most {rows} train examples")
        rule = f"{floor}" + (f" ({MIN_STEPS_PER_CLASS} per class x {classes} classes)" if floor > MIN_STEPS else "")
        groups.setdefault(f"at most {steps} optimizer steps ({how}): fewer than {rule}", []).append(cell.name)
    out = []
    for what, names in groups.items():
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        out.append(f"{where}: cell(s) {shown}: {what}, so they may barely learn; raise train.epochs or "
                   "train.max_steps, or lower train.batch_size x train.grad_accum")
        log.warning(out[-1])
    return out
