"""Each cell's test-accuracy difference to its reference, paired on the same test examples, and
what that difference means.

Δ = accuracy(cell) − accuracy(reference), both averaged over seeds. Its 95% interval and p-value
come from `stats.paired_bootstrap`: every draw resamples the test examples (the same ones for
both arms) and the seeds (seed s of the cell paired with seed s of the reference when both ran
the same seeds), so the interval covers both the test-set noise and the seed-to-seed spread.
The p-values are Holm-adjusted over every comparison of the study; a difference is *real*
(better or worse) when its adjusted p is below 0.05. `mdd` is the smallest difference this test
set and these seeds could detect at 80% power (2.80 standard errors of Δ); with one seed,
`seeds_needed` is how many seeds a Δ of this size would need for 80% power, if the examples the
two cells disagree on change from seed to seed (NaN when the reference ran more seeds).
McNemar's test per shared seed is a cross-check.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..stats import detectable, holm, mcnemar, paired_bootstrap, seeds_to_detect
from .collect import Study

log = logging.getLogger("contrastlab.aggregate")
ALPHA = 0.05
COLUMNS = ["cell", "reference", "n_test", "seeds", "paired_seeds", "diff", "lo", "hi", "se", "p", "p_holm",
           "mcnemar_p", "mdd", "seeds_needed", "significant", "verdict", "collapsed"]


def compare_all(study: Study, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """One row per cell (reference rows included, with NaN differences), in display order."""
    rows, cache = [], {}

    def correct(cell):
        if cell not in cache:
            cache[cell] = study.correct(cell)
        return cache[cell]

    for cell, info in study.cells.items():
        row = dict.fromkeys(COLUMNS, np.nan) | {"cell": cell, "reference": info.reference, "significant": False,
                                                "verdict": "reference", "collapsed": study.collapsed(cell) or ""}
        if cell != info.reference:
            row.update(compare(correct(info.reference), correct(cell), n_boot=n_boot, seed=seed))
        rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float))
    compared = out["diff"].notna()
    out.loc[compared, "significant"] = out.loc[compared, "p_holm"] < ALPHA
    collapsed = set(out.loc[out["collapsed"].astype(bool), "cell"])
    out.loc[compared, "verdict"] = [verdict_word(r, r["reference"] in collapsed) for _, r in out[compared].iterrows()]
    return out


def verdict_word(r, reference_collapsed: bool = False) -> str:
    if r["collapsed"]:
        return "collapsed"
    if reference_collapsed:  # a difference to a degenerate reference says nothing of the method
        return "reference collapsed"
    if r["p_holm"] < ALPHA:
        return "better" if r["diff"] > 0 else "worse"
    return "no detectable difference"


def compare(ref: pd.DataFrame, cell: pd.DataFrame, n_boot: int = 10000, seed: int = 0) -> dict:
    """ref, cell: [seeds x test examples] bool, columns = test example ids -> diff, lo, hi, p, se,
    mdd, seeds_needed, mcnemar_p. Only the test examples both arms scored count (normally all:
    cells sharing the data config score the same split); seeds pair when both ran the same seeds."""
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
    one_seed = len(cell.index) == 1 and len(ref.index) == 1
    return {**r, "n_test": len(common), "seeds": len(cell.index), "paired_seeds": paired,
            "mcnemar_p": float(np.median(mc)) if mc else np.nan, "mdd": detectable(r["se"], ALPHA),
            "seeds_needed": seeds_to_detect(r["diff"], r["se"], ALPHA) if one_seed else np.nan}
