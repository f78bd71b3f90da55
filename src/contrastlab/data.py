"""Labelled texts in, train/val/test splits out: `load_splits`, and `prepare` (the prepare job).

The sources (`data.source`) are read by contrastlab.sources.

A source's own train/val/test splits are kept; whatever is missing is carved out with a seeded,
stratified split: test = ``test_fraction`` of the data, then val = ``val_fraction`` of what is
left for train. Caps (``few_shot_n``, then ``max_train``; ``max_eval``) subsample the same way,
and ``label_noise`` then flips a seeded share of the train labels.

Input problems raise `DataError` naming the file (or hub split), the column and the row
(numbered as contrastlab.sources says). What is wrong but usable is kept with a warning that
counts it, and the summary saved with the prepared data (labels.json) records it: repeated texts (`data.duplicates`), and texts that
appear in two of the source's own splits (train/test overlap).
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .config import SPLITS, DataConfig
from .io import write_json
from .layout import PREPARED_FILES
from .sources import DataError, Table, read_tables

log = logging.getLogger("contrastlab.data")

# Label cells that mean "no label" in exported tables. A text that reads "NA" stays text.
MISSING_LABELS = {"", "nan", "na", "n/a", "null", "none", "<na>", "-"}


# ---- checks and label ids -----------------------------------------------------------------

def _key(value) -> str:
    """Label value -> name; 1, 1.0, "1" and "1.0" are the same label (a CSV's labels are text)."""
    if isinstance(value, str) and _is_number(value):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _check(table: Table, declared: list | None) -> None:
    """Rows present, columns present; every text a non-empty string; every label present."""
    df, text_col, label_col = table.frame, table.text_column, table.label_column
    if len(df) == 0:
        raise DataError(f"{table.origin}: no data rows" + (" (only a header)" if len(df.columns) else ""))
    for col, key in ((text_col, "text_column"), (label_col, "label_column")):
        if col not in df.columns:
            raise DataError(f"{table.origin}: no column '{col}' (columns: {', '.join(map(str, df.columns))}); "
                            f"name the file's column in data.{key}")
    for row, text in zip(df.index, df[text_col]):
        if not isinstance(text, str) or not text.strip():
            what = ("empty text" if isinstance(text, str) else
                    "empty or missing text" if pd.api.types.is_scalar(text) and pd.isna(text)
                    else f"not a string: {text!r}")
            raise DataError(f"{table.origin}, column '{text_col}', row {row + 1}: {what}")
    declared_keys = {_key(v) for v in declared or []}
    labels = df[label_col]
    missing = labels.isna() | labels.map(lambda v: isinstance(v, str) and v.strip().lower() in MISSING_LABELS
                                         and _key(v) not in declared_keys)
    if missing.any():
        row = df.index[missing.to_numpy().argmax()]
        shown = "" if pd.isna(labels[row]) else f" (it reads {labels[row]!r})"
        raise DataError(f"{table.where(row)}: missing label{shown}; {int(missing.sum())} row(s) in all. "
                        f"Fix or drop them, or declare the value in data.labels if it is a real class")


def _label_names(tables: dict[str, Table], declared: list | None) -> list[str]:
    if declared is not None:
        return [_key(v) for v in declared]
    keys = {_key(v) for t in tables.values() for v in t.frame[t.label_column]}
    numeric = all(_is_number(k) for k in keys)  # numeric labels sort as numbers: 2 before 10
    return sorted(keys, key=float if numeric else None)


def _is_number(s: str) -> bool:
    """A finite number: "nan", "NaN" and "inf" are text (a label "NaN" is not the number nan)."""
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _to_ids(table: Table, names: list[str]) -> pd.DataFrame:
    """The table as columns text, label (int id), row (source row, 1-based); index = source rows."""
    ids = {name: i for i, name in enumerate(names)}
    keys = table.frame[table.label_column].map(_key)
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

def _stratified(df: pd.DataFrame, size, seed: int, table: Table, names, what: str):
    """(rest, part) with `size` (fraction or count) of `df` in `part`, class ratios kept."""
    counts = df["label"].value_counts()
    if counts.min() < 2:
        label = counts.idxmin()
        row = df.index[df["label"] == label][0]
        raise DataError(f"{table.where()}: class {names[label]!r} has only 1 example (row {row + 1}); "
                        f"the stratified {what} needs at least 2 per class")
    try:
        return train_test_split(df, test_size=size, stratify=df["label"], random_state=seed)
    except ValueError as e:  # e.g. a part too small to hold every class once
        raise DataError(f"{table.where()}: cannot make the stratified {what}: {e}") from None


def _cap(df, n, seed, table, names, what):
    return df if n is None or len(df) <= n else _stratified(df, n, seed, table, names, what)[1]


def _few_shot(df: pd.DataFrame, n: int, seed: int, table: Table, names) -> pd.DataFrame:
    counts = df["label"].value_counts()
    for label, count in counts[counts < n].items():
        raise DataError(f"{table.where()}: few_shot_n={n} but class {names[label]!r} has only "
                        f"{count} train examples")
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
    train, seed = tables["train"], cfg.split_seed
    _check_classes(frames["train"], train, names, "the train data")
    if "test" not in frames:
        frames["train"], frames["test"] = _stratified(frames["train"], cfg.test_fraction, seed,
                                                      train, names, "test split")
    if "val" not in frames:
        frames["train"], frames["val"] = _stratified(frames["train"], cfg.val_fraction, seed,
                                                     train, names, "validation split")
    if cfg.few_shot_n is not None:
        frames["train"] = _few_shot(frames["train"], cfg.few_shot_n, seed, train, names)
    frames["train"] = _cap(frames["train"], cfg.max_train, seed, train, names, "max_train sample")
    for split in ("val", "test"):
        frames[split] = _cap(frames[split], cfg.max_eval, seed, tables.get(split, train), names,
                             "max_eval sample")
    _check_classes(frames["train"], train, names, "the train split")
    summary["overlap"] = _overlap(frames)
    if summary["overlap"]["train_test"]:
        log.warning("%d test texts also appear in train (the source's own splits overlap): test accuracy is "
                    "optimistic by up to that share", summary["overlap"]["train_test"])
    summary["label_noise"] = {"share": cfg.label_noise, "flipped": 0, "rows": []}
    if cfg.label_noise:
        noisy, flipped = flip_labels(frames["train"]["label"].to_numpy(), cfg.label_noise, len(names), seed)
        frames["train"] = frames["train"].assign(label=noisy)
        summary["label_noise"] = {"share": cfg.label_noise, "flipped": len(flipped),
                                  "rows": frames["train"]["row"].to_numpy()[flipped].tolist()}
    frames = {s: frames[s].reset_index(drop=True) for s in SPLITS}
    return frames, names, summary


# ---- prepared datasets on disk --------------------------------------------------------------

def prepare(cfg: DataConfig, tokenizer, max_len: int, out_dir: str | os.PathLike) -> None:
    """Load the splits, tokenise each text once (truncated to `max_len` tokens, special tokens
    included; no padding, which happens per batch) and save to `out_dir` (contrastlab.prepared
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
