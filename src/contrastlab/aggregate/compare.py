"""Each cell's test-accuracy difference to its reference, paired on the same test examples.

Δ = accuracy(cell) − accuracy(reference), both averaged over seeds. Its 95% interval and p-value
come from `stats.paired_bootstrap`: every draw resamples the test examples (the same ones for
both arms) and the seeds (seed s of the cell paired with seed s of the reference when both ran
the same seeds), so the interval covers both the test-set noise and the seed-to-seed spread. A
difference is *significant* when its interval excludes zero. McNemar's test per shared seed and
Holm-adjusted bootstrap p-values (over all cells) are in the CSV as a cross-check.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..stats import mcnemar, paired_bootstrap
from .collect import Study

log = logging.getLogger("contrastlab.aggregate")
COLUMNS = ["cell", "reference", "n_test", "seeds", "paired_seeds", "diff", "lo", "hi", "p", "p_holm",
           "mcnemar_p", "significant"]


def compare_all(study: Study, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """One row per cell (reference rows included, with NaN differences), in grid order."""
    rows, cache = [], {}

    def correct(cell):
        if cell not in cache:
            cache[cell] = study.correct(cell)
        return cache[cell]

    for cell, info in study.cells.items():
        row = dict.fromkeys(COLUMNS, np.nan) | {"cell": cell, "reference": info.reference, "significant": False}
        if cell != info.reference:
            row.update(compare(correct(info.reference), correct(cell), n_boot=n_boot, seed=seed))
            row["reference"] = info.reference
        rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float))
    return out


def compare(ref: pd.DataFrame, cell: pd.DataFrame, n_boot: int = 10000, seed: int = 0) -> dict:
    """ref, cell: [seeds x test examples] bool, columns = test index -> diff, lo, hi, p, ...

    Only the test examples both arms scored count (normally all: cells sharing the data config
    score the same split); seeds pair when both arms ran the same seeds."""
    common = ref.columns.intersection(cell.columns)
    if len(common) == 0:
        raise ValueError("the cell and its reference share no test examples: different data configs?")
    if len(common) < max(len(ref.columns), len(cell.columns)):
        log.warning("comparing on the %d test examples both arms scored (of %d and %d)",
                    len(common), len(ref.columns), len(cell.columns))
    shared = sorted(set(ref.index) & set(cell.index))
    paired = len(shared) == len(ref.index) == len(cell.index)
    a, b = ref[common].to_numpy(bool), cell[common].to_numpy(bool)
    r = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, paired_seeds=paired)
    mc = [mcnemar(ref.loc[s, common].to_numpy(bool), cell.loc[s, common].to_numpy(bool))["p"] for s in shared]
    return {**r, "n_test": len(common), "seeds": len(cell.index), "paired_seeds": paired,
            "mcnemar_p": float(np.median(mc)) if mc else np.nan,
            "significant": bool(r["lo"] > 0 or r["hi"] < 0)}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the non-NaN p-values (family-wise error over all cells)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if len(idx) == 0:
        return out
    order = idx[np.argsort(p[idx])]
    m = len(order)
    adjusted = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    out[order] = np.minimum(adjusted, 1.0)
    return out
