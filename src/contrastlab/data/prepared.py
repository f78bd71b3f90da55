"""Read a prepared (tokenised) dataset, as written by `contrastlab.data.prepare`.

numpy only: the training and embedding jobs read their data without importing pandas,
scikit-learn or datasets (about 2 s of start-up each).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contrastlab.plan.config import SPLITS
from contrastlab.plan.layout import PREPARED_FILES


@dataclass
class Split:
    ids: list[np.ndarray]  # token ids of each text, [CLS] ... [SEP], unpadded
    labels: np.ndarray  # [N] class ids
    rows: np.ndarray  # [N] the text's row in its source (1-based)

    def __len__(self) -> int:
        return len(self.labels)

    def subsample(self, n: int | None, seed: int) -> np.ndarray:
        """Sorted indices of a stratified seeded subsample of n examples (all when n is None or
        larger): each class keeps its share, rounded by largest remainder."""
        if n is None or n >= len(self):
            return np.arange(len(self))
        rng = np.random.default_rng(seed)
        classes, counts = np.unique(self.labels, return_counts=True)
        quota = counts * n / len(self)
        take = np.floor(quota).astype(int)
        take[np.argsort(-(quota - take), kind="stable")[: n - take.sum()]] += 1
        picked = [rng.choice(np.flatnonzero(self.labels == c), k, replace=False) for c, k in zip(classes, take)]
        return np.sort(np.concatenate(picked))


@dataclass
class Prepared:
    splits: dict[str, Split]
    names: list[str]  # class id -> label name
    summary: dict  # labels.json: counts per split, duplicates, overlap, label noise


def load_prepared(out_dir: str | os.PathLike, splits: tuple[str, ...] = SPLITS) -> Prepared:
    """The prepared dataset, with only `splits` read (a tuning trial never reads test)."""
    out_dir = Path(out_dir)
    tokens, summary = out_dir / PREPARED_FILES["tokens"], out_dir / PREPARED_FILES["summary"]
    if not tokens.is_file() or not summary.is_file():
        raise FileNotFoundError(f"{out_dir}: not a prepared dataset (run prepare first)")
    meta = json.loads(summary.read_text())
    with np.load(tokens) as z:
        splits = {s: Split(np.split(z[f"{s}_ids"], z[f"{s}_offsets"][1:-1]), z[f"{s}_labels"], z[f"{s}_rows"])
                  for s in splits}
    return Prepared(splits, meta["names"], meta)


def split_fingerprint(out_dir: str | os.PathLike, split: str = "test") -> str | None:
    """A hash of a split's examples (source row, label name, text; in row order), from the
    <split>.csv that contrastlab.data.prepare writes beside the tokens. Two cells are paired by
    source row in the aggregate: equal hashes say the rows hold the same examples. None when the
    file is missing (a dataset prepared by an older version)."""
    path, summary = Path(out_dir) / f"{split}.csv", Path(out_dir) / PREPARED_FILES["summary"]
    if not path.is_file() or not summary.is_file():
        return None
    names = json.loads(summary.read_text())["names"]
    with open(path, newline="", encoding="utf-8") as f:
        rows = sorted((int(r["row"]), str(names[int(r["label"])]), r["text"]) for r in csv.DictReader(f))
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]
