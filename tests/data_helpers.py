"""Small labelled tables and data configs shared by the data tests."""
import numpy as np
import pandas as pd

from contrastlab.plan.config import DataConfig

WORDS = "good bad fine dull sharp slow bright flat warm cold".split()
SPLITS = ("train", "val", "test")


def frame(n_per_class=20, classes=("neg", "pos"), text="review", label="sentiment"):
    """A small labelled table with distinct texts and `n_per_class` rows of each class."""
    rows = [{text: f"{c} {WORDS[i % len(WORDS)]} movie number {i}", label: c}
            for i in range(n_per_class) for c in classes]
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path) -> str:
    ext = path.suffix
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif ext == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif ext == ".json":
        df.to_json(path, orient="records")
    elif ext == ".parquet":
        df.to_parquet(path)
    return str(path)


def files_cfg(files, **kw):
    return DataConfig(source="files", files=files, text_column="review", label_column="sentiment", **kw)


def class_counts(split: pd.DataFrame, n_classes: int) -> np.ndarray:
    return np.bincount(split["label"].to_numpy(), minlength=n_classes)


def within_one_of_proportional(counts: np.ndarray, shares: np.ndarray) -> bool:
    """Every class count within +-1 of its proportional share of the split's size."""
    return bool(np.all(np.abs(counts - counts.sum() * shares) <= 1))

