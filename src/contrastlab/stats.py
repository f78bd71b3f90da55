"""Is a difference to the baseline real? Paired tests on the same test examples, over seeds,
and the smallest difference a study of this size could have detected.

Inputs are per-example correctness: `correct[s, i]` is True when the run with seed s got test
example i right. Both arms must be scored on the same N examples in the same order.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, chi2, norm

EXACT_BELOW = 25  # McNemar: exact binomial test below this many discordant pairs


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 10000, seed: int = 0,
                     ci: float = 0.95, paired_seeds: bool | None = None) -> dict[str, float]:
    """Accuracy difference b - a with a percentile interval and a two-sided bootstrap p-value.

    correct_a [S_a, N] and correct_b [S_b, N] bool (a 1-D [N] array counts as one seed).
    Each bootstrap draw resamples the N test examples (the same indices for both arms: paired)
    and, when there is more than one seed, the seeds: with one shared draw of seed indices when
    `paired_seeds` (default: when S_a == S_b, i.e. seed k of a pairs with seed k of b), else
    independently per arm. p = share of draws whose centred difference |d* - d| reaches |d|
    (the bootstrap null shifted to 0), with the +1 correction so it is never exactly 0.
    Returns diff (equal to the plain difference of mean accuracies), lo, hi, p, and se (the
    standard deviation of the bootstrap draws: the standard error of diff).
    """
    a, b = np.atleast_2d(np.asarray(correct_a, dtype=np.float64)), np.atleast_2d(np.asarray(correct_b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both arms must score the same test examples; got {a.shape[1]} and {b.shape[1]}")
    if paired_seeds is None:
        paired_seeds = a.shape[0] == b.shape[0]
    elif paired_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need the same number of seeds; got {a.shape[0]} and {b.shape[0]}")
    n = a.shape[1]
    diff = b.mean() - a.mean()
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # bound the [chunk, N] working arrays to a few tens of MB
    draws = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        wa = _seed_weights(rng, m, a.shape[0])
        wb = wa if paired_seeds else _seed_weights(rng, m, b.shape[0])
        per_example = wb @ b - wa @ a  # [m, N]: each draw's seed-averaged difference per example
        idx = rng.integers(0, n, size=(m, n))
        draws.append(np.take_along_axis(per_example, idx, axis=1).mean(1))
    draws = np.concatenate(draws)
    lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
    p = (1 + np.sum(np.abs(draws - diff) >= abs(diff) - 1e-12)) / (n_boot + 1)
    return {"diff": float(diff), "lo": float(lo), "hi": float(hi), "p": float(min(p, 1.0)), "se": float(draws.std())}


def _seed_weights(rng: np.random.Generator, m: int, s: int) -> np.ndarray:
    """[m, s] weights averaging s seeds resampled with replacement (all 1 when s == 1)."""
    if s == 1:
        return np.ones((m, 1))
    return rng.multinomial(s, np.full(s, 1.0 / s), size=m) / s


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """McNemar's test on one seed of each arm: correct_a [N], correct_b [N] bool.

    b01: a wrong and b right; b10: a right and b wrong. Exact two-sided binomial test on the
    discordant pairs when there are fewer than EXACT_BELOW of them (statistic = min(b01, b10)),
    otherwise chi-square (1 dof) with continuity correction: (|b01 - b10| - 1)^2 / (b01 + b10).
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar needs two [N] arrays of the same length; got {a.shape} and {b.shape}")
    b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    n = b01 + b10
    if n == 0:
        return {"b01": 0, "b10": 0, "statistic": 0.0, "p": 1.0, "method": "exact"}
    if n < EXACT_BELOW:
        return {"b01": b01, "b10": b10, "statistic": float(min(b01, b10)),
                "p": float(binomtest(b01, n, 0.5).pvalue), "method": "exact"}
    stat = (abs(b01 - b10) - 1) ** 2 / n
    return {"b01": b01, "b10": b10, "statistic": float(stat), "p": float(chi2.sf(stat, 1)), "method": "chi2"}


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of the non-NaN p-values (family-wise error over all of them):
    the i-th smallest of m is multiplied by (m - i + 1), then made non-decreasing and capped at 1."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if len(idx) == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]  # smallest first
    m = len(order)
    adjusted = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def detectable(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable difference of a two-sided test at level alpha with this power, for
    an estimate with standard error se: (z_{1-alpha/2} + z_power) * se (2.80 se at 0.05 and 80%)."""
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def seeds_to_detect(diff: float, se_one_seed: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds per arm for `diff` to be detectable, if the examples the two arms disagree on vary
    from seed to seed (their disagreement then averages out as 1/seeds; a part that does not vary
    with the seed does not, so this is a lower bound). inf when diff is 0."""
    if diff == 0:
        return math.inf
    return float(math.ceil((detectable(se_one_seed, alpha, power) / abs(diff)) ** 2))


def format_mean_std(mean: float, std: float | None, digits: int = 3, n: int | None = None) -> str:
    """"0.812 ± 0.004"; just "0.812" for one seed (n == 1) or when std is None/NaN."""
    if std is None or (isinstance(std, float) and math.isnan(std)) or n == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
