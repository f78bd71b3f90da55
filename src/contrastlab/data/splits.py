"""Labelled texts in, train/val/test splits out: `load_splits`, and `prepare` (the prepare job).

The sources (`data.source`) are read by contrastlab.data.sources.

A source's own train/val/test splits are kept; whatever is missing is carved out with a seeded,
stratified split: test = ``test_fraction`` of the data, then val = ``val_fraction`` of what is
left for train. Caps (``few_shot_n``, then ``max_train``; ``max_eval``) subsample the same way,
and ``label_noise`` then flips a seeded share of the train labels. The splits and ``max_eval``
follow ``split_seed``; the train draw (few-shot, max_train, noise) follows ``draw_seed``
(contrastlab.data.preps), so every draw is tested on the same examples. Label names are kept as
written (contrastlab.data.splits._name).

Input problems raise `DataError` naming the file (or hub split), the column and the row
(numbered as contrastlab.data.sources says). What is wrong but usable is kept with a warning that
counts it, and the summary saved with the prepared data (labels.json) records it: repeated texts (`data.duplicates`), and texts that
appear in two of the source's own splits (train/test overlap).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from contrastlab.plan.config import SPLITS, DataConfig
from contrastlab.operations.io import write_json
from contrastlab.plan.layout import PREPARED_FILES
from contrastlab.data.preps import draw_problem, draw_seed_of
from contrastlab.data.sources import DataError, Table, read_tables

log = logging.getLogger("contrastlab.data.splits")

# Label cells that mean "no label" in exported tables. A text that reads "NA" stays text.
MISSING_LABELS = {"", "nan", "na", "n/a", "null", "none", "<na>", "-"}


# ---- checks and label ids -----------------------------------------------------------------

def _name(value) -> str:
    """A label value -> its class name, exactly as written: text stays text ("3.10", "1_2" and an
    18-digit id are names, not numbers; "good " is checked against "good" by _check_near_duplicates);
    an integer is its digits, and a whole float is the integer pandas or parquet widened to float
    (a column of ints with a missing value)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"  # as JSON writes it
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(int(value)) if isinstance(value, (int, np.integer)) else str(value)


def _shown(value, limit: int = 80) -> str:
    """repr of a bad value, cut to one line's worth (a whole JSON table is not a message)."""
    r = repr(value)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(r)} characters)"


def _check(table: Table, declared: list | None) -> None:
    """Rows present, columns present; every text a non-empty string; every label present."""
    df, text_col, label_col = table.frame, table.text_column, table.label_column
    if len(df) == 0:
        raise DataError(f"{table.origin}: no data rows" + (" (only a header)" if len(df.columns) else ""))
    for col, key in ((text_col, "text_column"), (label_col, "label_column")):
        if col not in df.columns:
            raise DataError(f"{table.origin}: no column {col!r} (columns: {', '.join(map(repr, df.columns))}); "
                            f"name the file's column in data.{key}")
    for row, text in zip(df.index, df[text_col]):
        if not isinstance(text, str) or not text.strip():
            what = ("empty text" if isinstance(text, str) else
                    "empty or missing text" if pd.api.types.is_scalar(text) and pd.isna(text)
                    else f"not a string: {_shown(text)}")
            raise DataError(f"{table.origin}, column {text_col!r}, row {row + 1}: {what}")
    labels = df[label_col]
    for row, label in zip(df.index, labels):
        if not pd.api.types.is_scalar(label):
            raise DataError(f"{table.where(row)}: the label is a {type(label).__name__}, {_shown(label)}; a label "
                            "must be one value (text or a number)")
    declared_keys = {_name(v) for v in declared or []}
    missing = labels.isna() | labels.map(lambda v: isinstance(v, str) and v.strip().lower() in MISSING_LABELS
                                         and _name(v) not in declared_keys)
    if missing.any():
        row = df.index[missing.to_numpy().argmax()]
        shown = "" if pd.isna(labels[row]) else f" (it reads {labels[row]!r})"
        raise DataError(f"{table.where(row)}: missing label{shown}; {int(missing.sum())} row(s) in all. "
                        f"Fix or drop them, or declare the value in data.labels if it is a real class")


def _label_names(tables: dict[str, Table], declared: list | None) -> list[str]:
    if declared is not None:
        return [_name(v) for v in declared]
    names = {_name(v) for t in tables.values() for v in t.frame[t.label_column]}
    _check_near_duplicates(tables, names)
    if all(NUMBER.fullmatch(n) for n in names):  # numeric names sort as numbers: 2 before 10, 3.1 before 3.10
        return sorted(names, key=lambda n: (float(n), n))
    return sorted(names)


NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _near(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def _check_near_duplicates(tables: dict[str, Table], names: set[str]) -> None:
    """Two label names that differ only in case, surrounding spaces or Unicode form ("good " and
    "good", "Positive" and "positive") would be two classes: almost always a typo, so stop (a study
    that means them as two classes declares both in data.labels)."""
    groups = {}
    for n in sorted(names):
        groups.setdefault(_near(n), []).append(n)
    clash = next((g for g in groups.values() if len(g) > 1), None)
    if clash is None:
        return
    where = []
    for name in clash[:2]:
        t, row = next((t, r) for t in tables.values() for r, v in zip(t.frame.index, t.frame[t.label_column])
                      if _name(v) == name)
        where.append(f"{name!r} ({t.origin}, row {row + 1})")
    raise DataError(f"column {tables['train'].label_column!r}: labels {where[0]} and {where[1]} differ only in case "
                    "or spaces, so they would be two classes; fix the file, or declare both in data.labels if they "
                    "are distinct classes")


def _to_ids(table: Table, names: list[str]) -> pd.DataFrame:
    """The table as columns text, label (int id), row (source row, 1-based); index = source rows."""
    ids = {name: i for i, name in enumerate(names)}
    keys = table.frame[table.label_column].map(_name)
    unknown = ~keys.isin(list(ids))
    if unknown.any():
        row = table.frame.index[unknown.to_numpy().argmax()]
        raise DataError(f"{table.where(row)}: label {keys[row]!r} is not one of the declared labels {names}")
    return pd.DataFrame({"text": table.frame[table.text_column], "label": keys.map(ids).astype(int),
                         "row": table.frame.index + 1}, index=table.frame.index)


def _deduplicate(df: pd.DataFrame, table: Table, policy: str, names, quiet: bool = False) -> tuple[pd.DataFrame, dict]:
    """Repeated texts within one source: kept, dropped, or an error (`data.duplicates`)."""
    key = df["text"].str.strip()
    conflicting = df.groupby(key)["label"].transform("nunique") > 1
    repeated = key.duplicated() & ~conflicting
    stats = {"repeated_rows": int(repeated.sum()), "conflicting_rows": int(conflicting.sum())}
    if not (stats["repeated_rows"] or stats["conflicting_rows"]):
        return df, stats
    first = df.index[(conflicting | repeated).to_numpy().argmax()]
    what = (f"{stats['repeated_rows']} repeated text(s) and {stats['conflicting_rows']} row(s) whose text "
            f"also appears with another label (first: row {first + 1})")
    if policy == "error":
        raise DataError(f"{table.origin}: {what}; repeats leak across splits (data.duplicates: drop removes them)")
    if policy == "keep":
        log.warning("%s: %s, kept (data.duplicates: keep): test examples may repeat train ones", table.origin, what)
        return df, stats
    (log.info if quiet else log.warning)("%s: %s; dropped the repeats and every copy of a text with two labels "
                                         "(data.duplicates: drop)", table.origin, what)
    return df[~conflicting & ~key.duplicated()], stats


def _overlap(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Texts of one split that also appear in another: train/test overlap is leakage."""
    texts = {s: set(f["text"].str.strip()) for s, f in frames.items()}
    return {f"{a}_{b}": len(texts[a] & texts[b]) for a, b in (("train", "test"), ("train", "val"), ("val", "test"))}


# ---- splitting ----------------------------------------------------------------------------

def _stratified(df: pd.DataFrame, size, seed: int, table: Table, names, what: str, before=None):
    """(rest, part) with `size` (fraction or count) of `df` in `part`, class ratios kept. `before`:
    the rows of each class before earlier splits took theirs (so that a message counts from there)."""
    counts = df["label"].value_counts()
    if counts.min() < 2:
        label = counts.idxmin()
        rows = df.index[df["label"] == label]
        raise DataError(f"{table.where()}: class {names[label]!r} {_how_many(label, counts, before)} "
                        f"(row {rows[0] + 1}); the stratified {what} needs at least 2 per class")
    try:
        return train_test_split(df, test_size=size, stratify=df["label"], random_state=seed)
    except ValueError as e:  # e.g. a part too small to hold every class once
        raise DataError(f"{table.where()}: cannot make the stratified {what}: {e}") from None


def _how_many(label, counts, before) -> str:
    """"has only 1 example", or "has 2 rows, of which the test and val splits took 1: 1 is left"."""
    left, total = int(counts.get(label, 0)), int(before[label]) if before is not None else None
    if total is None or total == left:
        return f"has only {left} example{'s' if left != 1 else ''}"
    return f"has {total} rows, of which the test and validation splits took {total - left}: {left} left"


def _cap(df, n, seed, table, names, what):
    return df if n is None or len(df) <= n else _stratified(df, n, seed, table, names, what)[1]


def _few_shot(df: pd.DataFrame, n: int, seed: int, table: Table, names, before=None) -> pd.DataFrame:
    counts = df["label"].value_counts()
    for label in range(len(names)):
        if counts.get(label, 0) < n:
            raise DataError(f"{table.where()}: few_shot_n={n} but class {names[label]!r} "
                            f"{_how_many(label, counts, before)} in train")
    shots = df.groupby("label", group_keys=False).sample(n=n, random_state=seed)
    return shots.sample(frac=1, random_state=seed)  # mix the classes again


def flip_labels(labels: np.ndarray, share: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric label noise: exactly round(share * N) labels, chosen with `seed`, each moved to
    one of the other classes uniformly. -> (noisy labels, indices flipped)."""
    rng = np.random.default_rng([seed, 7])
    n = int(round(share * len(labels)))
    flipped = np.sort(rng.choice(len(labels), n, replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, n)) % n_classes
    return noisy, flipped


def _check_classes(df: pd.DataFrame, table: Table, names, what: str) -> None:
    """`df` (the train split, or all the data) holds at least 2 classes, and every class."""
    present = set(df["label"])
    if len(present) < 2:
        raise DataError(f"{table.where()}: all {len(df)} rows of {what} (rows {df.index.min() + 1}"
                        f"-{df.index.max() + 1}) have label {names[df['label'].iloc[0]]!r}; "
                        "a classifier needs at least 2 classes")
    absent = [names[i] for i in range(len(names)) if i not in present]
    if absent:
        raise DataError(f"{table.where()}: no row of {what} has label {', '.join(map(repr, absent))}")


def class_names(cfg: DataConfig) -> list[str]:
    """The label names of a source, its rows checked (for the DAG build's checks that need them)."""
    tables, declared = read_tables(cfg)
    for table in tables.values():
        _check(table, declared)
    return _label_names(tables, declared)


def load_splits(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """{split: frame with text, label (0..C-1), row (source row)}, the label names, and a summary
    of what was dropped, flipped or overlaps."""
    tables, declared = read_tables(cfg)
    for table in tables.values():
        _check(table, declared)
    names = _label_names(tables, declared)
    frames, summary = {}, {"duplicates": {}}
    for split, table in tables.items():
        embedded = cfg.source == "embedded"  # a known corpus: its 56 repeats are always dropped, quietly
        frames[split], summary["duplicates"][split] = _deduplicate(_to_ids(table, names), table,
                                                                   "drop" if embedded else cfg.duplicates, names, embedded)
        if frames[split].empty:  # every text was given two labels: nothing to train or test on
            raise DataError(f"{table.origin}: no rows left after dropping repeated texts: every one of its "
                            f"{len(table.frame)} rows has a text that also appears with another label "
                            "(data.duplicates: drop)")
    train, seed, draw = tables["train"], cfg.split_seed, draw_seed_of(cfg)
    _check_classes(frames["train"], train, names, "the train data")
    problem = draw_problem(cfg, len(names))
    if problem:
        raise DataError(f"{train.origin}: {problem}")
    before = frames["train"]["label"].value_counts()
    # test, val and max_eval follow split_seed; the train draw (few-shot, max_train, noise) follows
    # draw_seed, so that every draw is tested on the same examples.
    if "test" not in frames:
        frames["train"], frames["test"] = _stratified(frames["train"], cfg.test_fraction, seed,
                                                      train, names, "test split", before)
    if "val" not in frames:
        frames["train"], frames["val"] = _stratified(frames["train"], cfg.val_fraction, seed,
                                                     train, names, "validation split", before)
    if cfg.few_shot_n is not None:
        frames["train"] = _few_shot(frames["train"], cfg.few_shot_n, draw, train, names, before)
    frames["train"] = _cap(frames["train"], cfg.max_train, draw, train, names, "max_train sample")
    for split in ("val", "test"):
        frames[split] = _cap(frames[split], cfg.max_eval, seed, tables.get(split, train), names,
                             "max_eval sample")
    _check_classes(frames["train"], train, names, "the train split")
    summary["overlap"] = _overlap(frames)
    if summary["overlap"]["train_test"]:
        log.warning("%d test texts also appear in train (the source's own splits overlap): test accuracy is "
                    "optimistic by up to that share", summary["overlap"]["train_test"])
    summary["label_noise"] = {"share": cfg.label_noise, "flipped": 0, "rows": []}
    summary["draw_seed"] = draw
    if cfg.label_noise:
        n_train = len(frames["train"])
        if round(cfg.label_noise * n_train) == 0:
            raise DataError(f"{train.origin}: data.label_noise = {cfg.label_noise:g} of the {n_train} train examples "
                            f"flips round({cfg.label_noise * n_train:.2g}) = 0 labels, so the cell would be "
                            f"noise-free; use at least {1 / n_train:.2g} (one label) or more train data")
        noisy, flipped = flip_labels(frames["train"]["label"].to_numpy(), cfg.label_noise, len(names), draw)
        frames["train"] = frames["train"].assign(label=noisy)
        summary["label_noise"] = {"share": cfg.label_noise, "flipped": len(flipped),
                                  "rows": frames["train"]["row"].to_numpy()[flipped].tolist()}
    frames = {s: frames[s].reset_index(drop=True) for s in SPLITS}
    return frames, names, summary


# ---- prepared datasets on disk --------------------------------------------------------------

def prepare(cfg: DataConfig, tokenizer, max_len: int, out_dir: str | os.PathLike) -> None:
    """Load the splits, tokenise each text once (truncated to `max_len` tokens, special tokens
    included; no padding, which happens per batch) and save to `out_dir` (contrastlab.data.prepared
    reads it): tokens.npz, labels.json (names, counts per split, the summary) and <split>.csv
    (row, label, text: for reading). `out_dir` appears complete or not at all."""
    if max_len <= tokenizer.num_special_tokens_to_add():
        raise ValueError(f"model.max_len={max_len} leaves no room for text after the special tokens")
    frames, names, summary = load_splits(cfg)
    arrays = {}
    for split, df in frames.items():
        ids = tokenizer(df["text"].tolist(), truncation=True, max_length=max_len)["input_ids"]
        arrays[f"{split}_ids"] = np.concatenate([np.asarray(s, dtype=np.int32) for s in ids]) if ids else np.zeros(0, np.int32)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(s) for s in ids]).astype(np.int64)
        arrays[f"{split}_labels"] = df["label"].to_numpy(np.int64)
        arrays[f"{split}_rows"] = df["row"].to_numpy(np.int64)
    counts = {s: dict(zip(names, np.bincount(f["label"], minlength=len(names)).tolist())) for s, f in frames.items()}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should not be
    try:
        with open(tmp / PREPARED_FILES["tokens"], "wb") as f:
            np.savez(f, **arrays)
        for split, df in frames.items():
            df[["row", "label", "text"]].to_csv(tmp / f"{split}.csv", index=False)
        write_json(tmp / PREPARED_FILES["summary"], {"names": names, "counts": counts, "max_len": max_len,
                                                     "pad_id": tokenizer.pad_token_id, **summary})
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s: %s", out_dir, {s: len(d) for s, d in frames.items()})


def _replace_dir(new: Path, target: Path) -> None:
    """Move directory `new` onto `target`; an old `target` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
