"""Per-cell results -> comparison tables: one row per cell, each metric as mean ± std over seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path, read_json

TEST_METRICS = ["accuracy", "roc_auc", "macro_f1"]
PROBE_METRICS = ["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "silhouette", "alignment", "uniformity"]


def collect(rows: list[dict]) -> pd.DataFrame:
    """rows: one per (cell, seed) with keys cell, seed, experiment, family, train, probe (paths to
    the metrics JSONs) -> one DataFrame row per (cell, seed) with every metric."""
    records = []
    for r in rows:
        rec = {k: r[k] for k in ("cell", "seed", "experiment", "family")}
        rec.update({k: v for k, v in read_json(r["train"]).items() if k not in rec})
        rec.update({k: v for k, v in read_json(r["probe"]).items() if k not in rec})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def mean_std(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and not pd.isna(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def fmt(mean: float, std: float, n: int, digits: int = 4) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary(df: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, formatted): one row per cell in grid order; numeric has <m>_mean and <m>_std."""
    numeric, shown = [], []
    for cell, g in df.groupby("cell", sort=False):
        num = {"cell": cell, "family": g["family"].iloc[0], "seeds": len(g)}
        txt = {"cell": cell, "family": num["family"], "seeds": len(g)}
        for m in metrics:
            if m not in g:
                continue
            mean, std = mean_std(g[m])
            num[f"{m}_mean"], num[f"{m}_std"] = mean, std
            txt[m] = fmt(mean, std, len(g))
        numeric.append(num)
        shown.append(txt)
    return pd.DataFrame(numeric), pd.DataFrame(shown)


def write_table(numeric: pd.DataFrame, shown: pd.DataFrame, md_path: str | Path, csv_path: str | Path,
                title: str, note: str = "") -> None:
    """Markdown for reading (mean ± std), CSV with the numbers for further analysis."""
    with atomic_path(csv_path) as tmp:
        numeric.to_csv(tmp, index=False)
    md = f"# {title}\n\n{note}\n\n" if note else f"# {title}\n\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(md + shown.to_markdown(index=False) + "\n")
