"""What a study can detect before it runs (`contrastlab plan`): per comparison, the minimum
detectable difference (MDD) at the planned seeds and test size, and the seeds that bring it down
to `analysis.target_mdd`. The variance model and its formulas are the verdict's own
(contrastlab.analysis.stats: `planned_se`, `detectable`, `seeds_to_detect`); this module only finds its
inputs and asks it.

Level: Holm's first step, α/m over the study's m comparisons, the level a comparison must pass
when it is the only real difference (the verdict's MDD is at its own Holm step; the plan cannot
know the order, so it takes the strictest). Power 80%.

Variance inputs, per comparison, per test example and per seed (`Variance`):
- from an earlier study's results (`earlier_variance`): its per-example predictions, through
  `stats.paired_difference`; a comparison it lacks takes the median of those it has;
- else assumed (`assumed_variance`): the test-example parts of `contrastlab.analysis.simulate.Truth`
  (two runs disagree on ~16% of test examples), measured on a simulated study.
The seed variance σ²_u: the earlier study's (pooled over its multi-seed comparisons), else
`analysis.seed_sd`, else ASSUMED_SEED_SD; an estimate on few seeds is taken at its upper 70%
bound (`stats.seed_var_bound`), as `seeds_to_detect` does.
"""
from __future__ import annotations

import glob
import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from contrastlab.plan import layout
from contrastlab.analysis.stats import detectable, paired_difference, planned_se, pool_seed_var, seed_var_bound, seeds_to_detect

ALPHA, POWER = 0.05, 0.8
MAX_SEEDS = 10  # the most seeds a study given as a seed list is planned up to (a longer list: its length)
ASSUMED_SEED_SD = 0.01  # one accuracy point of one seed's Δ over seeds (as analysis.equivalence_margin's default)
MOST_TEST = 10_000_000  # the largest test set the plan suggests


@dataclass(frozen=True)
class Variance:
    """One comparison's variance parts: σ²_e and σ²_r per test example, σ²_u per seed (on seed_df
    degrees of freedom; inf when assumed or given), and where each came from, in words."""
    examples: float
    interaction: float
    seed: float
    seed_df: float
    source: str
    seed_source: str


def planned_seeds(seeds) -> tuple[int, int]:
    """(seeds to start with, the most) of a study's `seeds`: a schedule mapping with .start and
    .max, or a list (its length; at most MAX_SEEDS, or its length when longer)."""
    if hasattr(seeds, "max"):
        return int(getattr(seeds, "start", seeds.max)), int(seeds.max)
    return len(seeds), max(len(seeds), MAX_SEEDS)


@lru_cache(maxsize=None)
def assumed_test_parts(seeds: int = 10, n: int = 2000, reps: int = 8) -> tuple[float, float]:
    """(σ²_e, σ²_r) per test example of contrastlab.analysis.simulate.Truth's arms (no seed effect), as the
    verdict's model estimates them on simulated studies of `seeds` x `n`."""
    from contrastlab.analysis.simulate import Truth, simulate
    from contrastlab.analysis.stats import difference_batch

    ref, cells = simulate(np.random.default_rng(0), reps, seeds, n, 0.0, Truth(seed_sd=0.0, draw_sd=0.0))
    r = difference_batch(ref, cells[0])
    return float(np.mean(r["var_examples"]) * n), float(np.mean(r["var_interaction"]) * seeds * n)


def assumed_variance(seed_sd: float | None) -> Variance:
    ex, inter = assumed_test_parts()
    sd, said = (seed_sd, "analysis.seed_sd") if seed_sd is not None else (ASSUMED_SEED_SD, "assumed")
    return Variance(ex, inter, sd ** 2, math.inf, "assumed (simulate.Truth: runs disagree on ~16% of test examples)",
                    f"{said}: seed SD {sd:.3f}")


def _correct(results: str, cell: str) -> dict[int, "object"]:
    """{seed: correct per test row (a pandas Series)} of a cell in a results folder."""
    import pandas as pd

    out = {}
    pattern = layout.stage_files(results, "train", cell, "*")["predictions"]
    for path in sorted(glob.glob(pattern)):
        seed = int(path.split("/seed")[-1].split("/")[0])
        p = pd.read_csv(path)
        out[seed] = p.set_index("row" if "row" in p else "index")["correct"].astype(bool)
    return out


def measured_parts(ref: np.ndarray, cell: np.ndarray) -> tuple[float, float, float]:
    """(σ²_e, σ²_r per test example, σ²_u) of a paired comparison ref, cell [S, N] (0/1) by the
    verdict's estimator; at one seed σ²_r is inside σ²_e (the plan then keeps it from shrinking
    with more seeds: conservative) and σ²_u is NaN."""
    r = paired_difference(ref, cell)
    s, n = np.atleast_2d(ref).shape
    return r["var_examples"] * n, r["var_interaction"] * s * n, r["seed_var"] if s > 1 else math.nan


def earlier_variance(results: str, comparisons: dict[str, str], seed_sd: float | None) -> dict[str, Variance]:
    """{cell: Variance} for the comparisons (cell -> reference) from the per-example predictions
    of an earlier study in `results`; those it lacks take the median of the others. {} when it
    has none of them."""
    found, seed_est = {}, []
    for cell, ref in comparisons.items():
        a, b = _correct(results, ref), _correct(results, cell)
        seeds = sorted(set(a) & set(b))
        if not seeds:
            continue
        rows = sorted(set.intersection(*(set(x.index) for x in [*a.values(), *b.values()])))
        ref_m = np.stack([a[s].loc[rows].to_numpy() for s in seeds])
        cell_m = np.stack([b[s].loc[rows].to_numpy() for s in seeds])
        ex, inter, seed_var = measured_parts(ref_m, cell_m)
        s, n = len(seeds), len(rows)
        found[cell] = (ex, inter, s, n)
        if s > 1:
            seed_est.append((seed_var, s - 1.0))
    if not found:
        return {}
    pooled = pool_seed_var(seed_est)
    if pooled is not None:
        seed, seed_df, seed_source = *pooled, f"earlier study, pooled over {len(seed_est)} comparison(s)"
    else:
        v = assumed_variance(seed_sd)
        seed, seed_df, seed_source = v.seed, v.seed_df, v.seed_source
    out = {}
    for cell, (ex, inter, s, n) in found.items():
        out[cell] = Variance(ex, inter, seed, seed_df, f"earlier study ({s} seed(s), {n} test examples)", seed_source)
    median = Variance(statistics.median(x[0] for x in found.values()), statistics.median(x[1] for x in found.values()),
                      seed, seed_df, f"earlier study, median of its {len(found)} comparison(s)", seed_source)
    return {cell: out.get(cell, median) for cell in comparisons}


def mdd(v: Variance, n: int, seeds: int, alpha: float) -> float:
    """The MDD of a paired comparison of `seeds` seeds on n test examples at level alpha, 80% power."""
    seed = seed_var_bound(v.seed, v.seed_df)
    return detectable(*planned_se(n, v.examples / n, seed, v.interaction / n, seeds, v.seed_df), alpha, POWER)


def seeds_needed(v: Variance, n: int, target: float, alpha: float, most: int) -> float:
    """The fewest seeds (at most `most`) whose MDD is within `target`; inf when none is."""
    if mdd(v, n, 1, alpha) <= target:
        return 1.0
    return seeds_to_detect(target, n, v.examples / n, v.seed, v.interaction / n, v.seed_df, alpha, POWER, most)


def test_size_needed(v: Variance, seeds: int, target: float, alpha: float) -> float:
    """The fewest test examples at which `seeds` seeds reach `target`; inf when the seeds' part
    alone exceeds it (more test examples cannot help)."""
    if mdd(v, MOST_TEST, seeds, alpha) > target:
        return math.inf
    lo, hi = 2, MOST_TEST
    while hi - lo > max(1, lo // 100):  # to 1%
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mdd(v, mid, seeds, alpha) <= target else (mid, hi)
    return float(hi)


@dataclass(frozen=True)
class PlanLine:
    cell: str
    reference: str
    n_test: int
    seeds: int
    max_seeds: int
    mdd: float
    needed: float  # seeds to reach the target; inf: not within max_seeds
    mdd_at_max: float
    test_needed: float  # test examples at which max_seeds reach the target (when needed is inf)
    variance: Variance


def plan_power(comparisons: dict[str, str], n_test: dict[str, int], variance: dict[str, Variance], seeds: int,
               most: int, target: float) -> list[PlanLine]:
    """One PlanLine per comparison (cell -> reference), at Holm's first step over all of them."""
    alpha = ALPHA / max(len(comparisons), 1)
    lines = []
    for cell, ref in comparisons.items():
        v, n = variance[cell], n_test[cell]
        need = seeds_needed(v, n, target, alpha, most)
        lines.append(PlanLine(cell, ref, n, seeds, most, mdd(v, n, seeds, alpha), need, mdd(v, n, most, alpha),
                              test_size_needed(v, most, target, alpha) if math.isinf(need) else math.nan, v))
    return lines



def config_test_size(data) -> int | None:
    """The test examples a DataConfig gives, from its caps and the source's rows (at most: the
    rows are counted lines); None where the data must be read to know (a hub dataset, a test file)."""
    from contrastlab.plan.budget import _source_rows
    from contrastlab.plan.config import SPLIT_ALIASES

    if data.source == "files" and any(SPLIT_ALIASES[k] == "test" for k in data.files or {}):
        return data.max_eval
    rows = _source_rows(data)
    known = [x for x in (data.max_eval, math.ceil(rows * data.test_fraction) if rows else None) if x is not None]
    return min(known) if known else None
