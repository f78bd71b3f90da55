"""The calibration checks of the verdict's statistics, on simulated predictions of known truth
(contrastlab.analysis.simulate): run by tests/test_calibration.py on a small grid and by
benchmarks/calibration.py on the full one.

Each check takes `test`, a function (ref [R, S, N], cell [R, S_b, N], **kw) -> dict of [R]
arrays with diff, se, df, p, lo, hi (as stats.difference_batch), so that a planted procedure
(e.g. seeds averaged before the test) can be checked the same way.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from contrastlab.analysis.simulate import Truth, replicate
from contrastlab.analysis.stats import detectable, difference_batch, holm, seeds_to_detect

ALPHA = 0.05


def _one(test, **kw):
    return lambda ref, cells: test(ref, cells[0], **kw)


def null_rate(rng, seeds: int, n: int, reps: int, test=difference_batch, truth: Truth = Truth(), **kw) -> float:
    """Share of comparisons at true Δ = 0 with p < 0.05."""
    r = replicate(_one(test, **kw), rng, reps, seeds, n, 0.0, truth)
    return float(np.mean(r["p"] < ALPHA))


def reported_mdd(rng, seeds: int, n: int, reps: int, test=difference_batch, truth: Truth = Truth(), **kw) -> float:
    """The mean MDD (80% power at 0.05) the procedure reports at Δ = 0."""
    r = replicate(_one(test, **kw), rng, reps, seeds, n, 0.0, truth)
    return float(np.mean([detectable(se, df) for se, df in zip(r["se"], r["df"])]))


def power_and_coverage(rng, seeds: int, n: int, delta: float, reps: int, test=difference_batch,
                       truth: Truth = Truth(), **kw) -> tuple[float, float]:
    """(share of replicates at true Δ = delta found different with the right sign, share whose
    95% interval covers delta)."""
    r = replicate(_one(test, **kw), rng, reps, seeds, n, delta, truth)
    found = (r["p"] < ALPHA) & (np.sign(r["diff"]) == np.sign(delta))
    return float(found.mean()), float(np.mean((r["lo"] <= delta) & (delta <= r["hi"])))


def familywise_error(rng, seeds: int, n: int, reps: int, arms: int = 14, test=difference_batch,
                     truth: Truth = Truth(), **kw) -> float:
    """Share of studies of `arms` null comparisons with one shared reference in which Holm's
    procedure calls any difference real."""
    def fn(ref, cells):
        p = np.stack([test(ref, c, **kw)["p"] for c in cells], axis=1)  # [R, arms]
        return {"any": np.array([np.nanmin(holm(row)) < ALPHA for row in p])}
    return float(replicate(fn, rng, reps, seeds, n, 0.0, truth, arms=arms)["any"].mean())


def recommended_seeds(rng, pilot_seeds: int, n: int, delta: float, reps: int, truth: Truth = Truth()) -> int:
    """The median over pilot studies (`pilot_seeds` seeds) of the seeds `stats.seeds_to_detect`
    recommends for a true Δ of `delta`, from each pilot's estimated variance parts."""
    r = replicate(_one(difference_batch), rng, reps, pilot_seeds, n, delta, truth)
    s = pilot_seeds
    rec = [seeds_to_detect(delta, n, ve, sv, vi * s, s - 1) for ve, sv, vi in
           zip(r["var_examples"], r["seed_var"], r["var_interaction"])]
    return int(np.median(rec))


def one_seed_variance(rng, n: int, reps: int = 200, seeds: int = 10, truth: Truth = Truth()) -> float:
    """The variance of one seed's Δ over seeds, measured on a large multi-seed pilot."""
    r = replicate(_one(difference_batch), rng, reps, seeds, n, 0.0, truth)
    return float(np.mean(r["seed_var"]))


def seeds_averaged_first(ref, cell, **kw):
    """A planted bug (issue 24): the seeds are averaged before the test, which then sees only the
    test examples' noise of the averaged differences."""
    return difference_batch(ref.mean(1, keepdims=True), cell.mean(1, keepdims=True), **kw)



# The former procedure (issue 18): Satterthwaite's df from the seeds' mean square as estimated,
# liberal in the far tail at 3-5 seeds; planted to show the family-wise check fails on it
plugin_df = partial(difference_batch, df_bound=None)
