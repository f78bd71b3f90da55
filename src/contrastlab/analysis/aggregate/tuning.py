"""Each arm's tuning, as Dodge et al. (2019, "Show your work") report it: the expected best
validation accuracy after n of its T trials, n = 1..T, with a bootstrap interval.

The expected maximum of n trials drawn without replacement from the T that ran: with the scores
sorted v_(1) <= ... <= v_(T), the best of n is v_(i) with probability C(i-1, n-1) / C(T, n) (the
other n-1 drawn from the i-1 below it), so E[max_n] = sum_i v_(i) C(i-1, n-1) / C(T, n). At n = T
it is the best score. The interval resamples the T scores with replacement (scipy.stats.bootstrap,
percentile): how much the curve would move had other trials been drawn from the same space.
"""
from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from contrastlab.analysis.aggregate.collect import Study  # noqa: E402
from contrastlab.analysis.aggregate.figures import placeholder, save_figure  # noqa: E402
from contrastlab.analysis.aggregate.tables import Table  # noqa: E402

CONFIDENCE, RESAMPLES = 0.95, 2000


def max_weights(t: int, n: int) -> np.ndarray:
    """P(the best of n draws without replacement from t is the i-th smallest), i = 1..t."""
    return np.array([math.comb(i - 1, n - 1) for i in range(1, t + 1)], dtype=float) / math.comb(t, n)


def expected_max(scores, n: int, axis: int = -1) -> np.ndarray | float:
    """E[max of n of `scores` drawn without replacement] (along `axis`; vectorised for the bootstrap)."""
    x = np.sort(np.asarray(scores, dtype=float), axis=axis)
    w = max_weights(x.shape[axis], n)
    return np.moveaxis(x, axis, -1) @ w


def curve(scores, seed: int = 0) -> pd.DataFrame:
    """n, expected_best, lo, hi for n = 1..T (the interval is NaN with fewer than 2 distinct scores)."""
    scores = np.asarray(scores, dtype=float)
    rows = []
    for n in range(1, len(scores) + 1):
        lo = hi = math.nan
        if len(np.unique(scores)) > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy warns on a degenerate resample; the percentile holds
                res = stats.bootstrap((scores,), lambda x, axis: expected_max(x, n, axis), vectorized=True,
                                      n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                                      random_state=np.random.default_rng(seed))
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        rows.append({"n": n, "expected_best": float(expected_max(scores, n)), "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def _fmt(values: dict) -> str:
    return ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())


def tuning_table(study: Study, comp) -> Table:
    """One row per arm (shown); the CSV has a row per arm and n."""
    shown, numeric = [], []
    for arm in study.tuning:
        scores = [t["val_accuracy"] for t in arm["trials"]]
        c = curve(scores)
        for r in c.itertuples():
            numeric.append({"cell": arm["cell"], "n": r.n, "expected_best_val_accuracy": r.expected_best,
                            "lo": r.lo, "hi": r.hi})
        best, last = arm["trials"][arm["selected"]], c.iloc[-1]
        ci = "" if math.isnan(last.lo) else f" [{last.lo:.3f}, {last.hi:.3f}]"
        row = {"cell": arm["cell"], "trials": len(scores), "E[best] at n=1": f"{c.iloc[0].expected_best:.3f}"}
        if len(c) >= 4:  # a point between one trial and all of them
            row["at n=T/2"] = f"{c.iloc[len(c) // 2 - 1].expected_best:.3f}"
        shown.append(row | {"at n=T (best)": f"{last.expected_best:.3f}{ci}",
                            "selected": f"trial {best['index']}: {_fmt(best['values'])}"})
    note = ("Validation accuracy only (no trial reads the test split). E[best] at n: the expected best of n of "
            "the arm's T trials drawn without replacement (Dodge et al. 2019); the interval resamples the T "
            f"scores ({CONFIDENCE:.0%} percentile bootstrap). The selected configuration then ran with the study's "
            "seeds and was tested once.")
    return Table("Tuning: the same trials for every arm", note, pd.DataFrame(shown).fillna(""), pd.DataFrame(numeric))


def tuning_curves(study: Study, comp, path) -> None:
    if not study.tuning:
        return placeholder(path, "no cell is tuned")
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in study.tuning:
        c = curve([t["val_accuracy"] for t in arm["trials"]])
        line, = ax.plot(c["n"], c["expected_best"], marker="o", ms=3, label=arm["cell"])
        ax.fill_between(c["n"], c["lo"], c["hi"], color=line.get_color(), alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials (n)")
    ax.set_ylabel("expected best validation accuracy")
    ax.set_title("Expected best validation accuracy vs trials (Dodge et al. 2019)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
