"""Is a difference to the reference real? One variance model for every comparison, its test,
interval and minimum detectable difference, and Holm's adjustment over a study.

The variance model
------------------
`correct[s, i]` is True when the run with seed s got test example i right; both arms are scored
on the same N test examples. A seed stands for everything a run draws: weight initialisation,
data order and, where the study varies it with the seed, the training sample (few-shot draw,
label noise). Each arm's correctness is

    x[s, i] = mu + e_i + u_s + r_si

with e_i the test example's effect (its difficulty for this arm), u_s the seed's effect, and r_si
the seed x example residual (which run gets which example right). Δ = mean(cell) − mean(ref).
With the seeds paired (seed s of the cell and of the reference ran with the same seed),
D[s, i] = x_cell − x_ref follows the same two-way crossed random-effects model, and

    Var(Δ) = σ²_e / N + σ²_u / S + σ²_r / (S N)

estimated from the mean squares of the S x N table D (unbiased, each part floored at 0): test
examples (paired across arms), seeds (a random effect), and their interaction. Unpaired seeds
(the two arms ran different seeds) add each arm's seed part, σ²_u,a / S_a + σ²_u,b / S_b.
The reference distribution is Student's t with Satterthwaite's degrees of freedom: S − 1 when
seeds dominate, N − 1 when test examples do. With few seeds the seeds' mean square is itself
noisy, and where it happens to come out small, Satterthwaite's df (computed from it) jumps
towards N − 1 just when the t statistic is least trustworthy: the far tail that Holm's first
steps use is then liberal (14 null comparisons at S = 3 gave a family-wise error of 13%). So
the df is computed from the seeds' mean square at its upper confidence bound,
MS_s · (S − 1) / χ²_{S−1}(DF_BOUND) (the variance itself stays the unbiased estimate): a
conservative df that holds Holm's family-wise error at or below 5-6% from S = 3 up.
The interval and the p-value come from this one t statistic, so they cannot disagree.

With one seed per arm σ²_u cannot be estimated from the comparison itself. It then comes from
`seed_var` (the variance of one seed's Δ over seeds: a pilot named in the config, or pooled over
the study's multi-seed comparisons, see `pool_seed_var`), with its degrees of freedom; without
one, `seed_var_known` is False and a verdict can only be provisional.

`tests/test_calibration.py` checks all of this on simulated predictions of known truth
(`contrastlab.analysis.simulate`): false positives, coverage, power at the reported MDD, Holm's
family-wise error and the seeds a line recommends.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binomtest, chi2, nct, norm, t as student_t

EXACT_BELOW = 25  # McNemar: exact binomial test below this many discordant pairs
BIG_DF = 1e6  # a t with this many degrees of freedom is the normal
# Satterthwaite's df is taken with the seeds' mean square at its upper (1 − DF_BOUND) confidence
# bound (see the module doc); None in `difference_batch` plugs in the estimate itself (the former,
# liberal procedure, kept so that calibration can show the checks fail on it)
DF_BOUND = 0.15


def _mean_squares(x: np.ndarray):
    """x [R, S, N] -> (grand mean, MS seeds, MS examples, MS residual) per replicate, [R] each
    (MS seeds and MS residual are NaN when S == 1)."""
    r, s, n = x.shape
    g = x.mean((1, 2))
    rows, cols = x.mean(2), x.mean(1)
    ms_e = s * ((cols - g[:, None]) ** 2).sum(1) / (n - 1)
    if s == 1:
        return g, np.full(r, np.nan), ms_e, np.full(r, np.nan)
    ms_s = n * ((rows - g[:, None]) ** 2).sum(1) / (s - 1)
    total = ((x - g[:, None, None]) ** 2).sum((1, 2))
    ss_r = total - (s - 1) * ms_s - (n - 1) * ms_e
    return g, ms_s, ms_e, np.maximum(ss_r, 0.0) / ((s - 1) * (n - 1))


def _satterthwaite(parts: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """[(variance part [R], its degrees of freedom)] -> (their sum, Satterthwaite's df)."""
    var = sum(p for p, _ in parts)
    denom = sum(np.where(p > 0, p ** 2 / df, 0.0) for p, df in parts if df > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, var ** 2 / denom, BIG_DF)
    return var, np.minimum(df, BIG_DF)


def _upper(ms: np.ndarray, df: float, bound: float | None) -> np.ndarray:
    """A mean square on df degrees of freedom at its upper (1 − bound) confidence bound (itself
    when bound is None)."""
    return ms if bound is None else ms * df / chi2.ppf(bound, df)


def difference_batch(ref: np.ndarray, cell: np.ndarray, paired_seeds: bool = True, seed_var: float | None = None,
                     seed_df: float = math.inf, ci: float = 0.95, df_bound: float | None = DF_BOUND
                     ) -> dict[str, np.ndarray]:
    """Δ = mean(cell) − mean(ref) for R replicates at once: ref [R, S_a, N], cell [R, S_b, N]
    (0/1). Returns arrays [R]: diff, se, df, t, p (two-sided), lo, hi (the `ci` interval) and the
    variance parts var_examples, var_seeds, var_interaction (their sum is se²), seed_var (the
    estimated variance of one seed's Δ over seeds) and seed_var_df; `seed_var_known` is a bool.
    `seed_var`/`seed_df`: the seed variance to use when a side ran one seed (see the module doc).
    `df_bound`: the seeds' mean square enters Satterthwaite's df at this upper bound (DF_BOUND)."""
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(cell, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"both arms must score the same test examples; got shapes {a.shape} and {b.shape}")
    (r, sa, n), sb = a.shape, b.shape[1]
    if paired_seeds and sa != sb:
        raise ValueError(f"paired seeds need the same number of seeds; got {sa} and {sb}")
    known = seed_var is not None
    ext = np.full(r, float(seed_var) if known else 0.0)
    ext_df = float(seed_df) if known and math.isfinite(seed_df) else BIG_DF
    if paired_seeds:
        g, ms_s, ms_e, ms_r = _mean_squares(b - a)
        s = sa
        if s > 1:
            v_seed_one = np.maximum(ms_s - ms_r, 0.0) / n  # σ²_u: one seed's Δ, over seeds
            sn = s * n
            # Var(Δ) = (MS_s + MS_e − MS_r) / SN, unbiased; not floored at a part's value (a floor
            # cuts the estimate's lower tail, and t on Satterthwaite's df is then conservative); in
            # the rare case it is not positive, the larger of MS_e and MS_s over SN
            num = ms_s + ms_e - ms_r
            var = np.where(num > 0, num, np.maximum(ms_e, ms_s)) / sn
            ms_s_df = _upper(ms_s, s - 1, df_bound)  # for the df only: a conservative df
            num_df = ms_s_df + ms_e - ms_r
            var_df = np.where(num_df > 0, num_df, np.maximum(ms_e, ms_s_df)) / sn
            denom = (ms_s_df / sn) ** 2 / (s - 1) + (ms_e / sn) ** 2 / (n - 1) + (ms_r / sn) ** 2 / ((s - 1) * (n - 1))
            with np.errstate(divide="ignore", invalid="ignore"):
                df = np.minimum(np.where(denom > 0, var_df ** 2 / denom, BIG_DF), BIG_DF)
            v_seed, v_ex = v_seed_one / s, np.maximum(ms_e - ms_r, 0.0) / sn
            v_int = var - v_seed - v_ex
            seed_one, seed_one_df, known = v_seed_one, np.full(r, s - 1.0), True
        else:
            v_ex, v_int, v_seed = ms_e / n, np.zeros(r), ext
            var, df = _satterthwaite([(v_ex, n - 1), (v_seed, ext_df)])
            seed_one, seed_one_df = ext, np.full(r, ext_df)
        diff = g
    else:
        ga, msa_s, _, msa_r = _mean_squares(a)
        gb, msb_s, _, msb_r = _mean_squares(b)
        d_i = b.mean(1) - a.mean(1)
        v_ex = d_i.var(1, ddof=1) / n  # σ²_e/N plus each arm's residual over its seeds
        v_int = np.zeros(r)
        arm = [(np.maximum(ms_s - ms_r, 0.0) / n if s > 1 else ext / 2, s) for ms_s, ms_r, s in
               ((msa_s, msa_r, sa), (msb_s, msb_r, sb))]
        v_seed = sum(v / s for v, s in arm)
        var = v_ex + v_seed
        _, df = _satterthwaite([(v_ex, n - 1)] + [(_upper(v, s - 1.0, df_bound) / s if s > 1 else v / s,
                                                     s - 1.0 if s > 1 else ext_df) for v, s in arm])
        seed_one = arm[0][0] + arm[1][0]
        seed_one_df = np.full(r, float(sa + sb - 2) if min(sa, sb) > 1 else ext_df)
        known = known or min(sa, sb) > 1
        diff = gb - ga
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf * np.sign(diff)))
    df = np.maximum(df, 1.0)  # Satterthwaite can fall below 1 when a part is estimated near 0
    p = 2 * student_t.sf(np.abs(tstat), df)
    half = student_t.ppf((1 + ci) / 2, df) * se
    return {"diff": diff, "se": se, "df": df, "t": tstat, "p": p, "lo": diff - half, "hi": diff + half,
            "var_examples": v_ex, "var_seeds": v_seed, "var_interaction": v_int, "seed_var": seed_one,
            "seed_var_df": seed_one_df, "seed_var_known": bool(known)}


def paired_difference(ref: np.ndarray, cell: np.ndarray, paired_seeds: bool | None = None, **kw) -> dict:
    """One comparison: ref [S_a, N], cell [S_b, N] bool (a 1-D [N] array is one seed) -> the
    scalars of `difference_batch`. Seeds pair by default when both arms ran as many."""
    a, b = np.atleast_2d(np.asarray(ref)), np.atleast_2d(np.asarray(cell))
    if paired_seeds is None:
        paired_seeds = a.shape[0] == b.shape[0]
    out = difference_batch(a[None], b[None], paired_seeds=paired_seeds, **kw)
    return {k: (float(v[0]) if isinstance(v, np.ndarray) else v) for k, v in out.items()}


def pool_seed_var(estimates: list[tuple[float, float]]) -> tuple[float, float] | None:
    """[(one seed's Δ variance, its df)] of several comparisons -> (pooled variance, pooled df),
    weighted by df; None when there is none."""
    est = [(v, d) for v, d in estimates if d > 0 and math.isfinite(v)]
    if not est:
        return None
    total = sum(d for _, d in est)
    return sum(v * d for v, d in est) / total, total


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


def holm_levels(p, alpha: float = 0.05) -> np.ndarray:
    """The level each non-NaN p-value is held to at its step of Holm's procedure: alpha / (m − i)
    for the i-th smallest (0-based) of m. NaN where p is NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    out[order] = alpha / (len(order) - np.arange(len(order)))
    return out


def detectable(se: float, df: float = math.inf, alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable difference of the two-sided t test at level alpha with this power,
    for an estimate with standard error se on df degrees of freedom: ncp · se, where the
    noncentral t with that ncp exceeds the critical value with probability `power`
    ((z_{1-α/2} + z_power) · se = 2.80 se when df is infinite, at 0.05 and 80%)."""
    if not se > 0:
        return 0.0 if se == 0 else math.nan
    if not math.isfinite(df) or df >= 1000:  # the normal, to 3 decimals
        return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)
    crit = student_t.ppf(1 - alpha / 2, df)

    def short(d):  # power at ncp d minus the target (the lower tail counts: the test is two-sided)
        return nct.sf(crit, df, d) + np.nan_to_num(nct.cdf(-crit, df, d)) - power
    hi = crit + 4.0
    with np.errstate(all="ignore"):
        while short(hi) < 0 and hi < 1e4:
            hi *= 2
        try:
            ncp = brentq(short, 0.0, hi)
        except ValueError:  # the noncentral t did not converge (df near 1): the usual approximation
            ncp = crit + student_t.ppf(power, df)
    return float(ncp * se)


def planned_se(n: int, var_examples_one: float, seed_var: float, interaction_one: float, seeds: int,
               seed_var_df: float = math.inf) -> tuple[float, float]:
    """(se, Satterthwaite df) of Δ for a paired study of `seeds` seeds per arm, by the variance
    model: se² = σ²_e/N + (σ²_u + σ²_r/N)/S (var_examples_one = σ²_e/N, interaction_one = σ²_r/N;
    the seed part's df is S − 1, or seed_var_df, where σ²_u came from, at one seed)."""
    per_seed = (seed_var + interaction_one) / seeds
    var = var_examples_one + per_seed
    seed_df = seeds - 1 if seeds > 1 else seed_var_df
    denom = var_examples_one ** 2 / max(n - 1, 1) + (per_seed ** 2 / seed_df if seed_df > 0 else math.inf)
    df = min(var ** 2 / denom, BIG_DF) if var > 0 and denom > 0 else BIG_DF
    return math.sqrt(var), df


def seed_var_bound(seed_var: float, seed_var_df: float) -> float:
    """σ²_u estimated on seed_var_df degrees of freedom, taken at its upper 70% bound,
    σ̂²·df/χ²_df(0.3), for planning: a few seeds mostly underestimate it (itself when df is inf)."""
    if math.isfinite(seed_var_df) and 0 < seed_var_df < BIG_DF:
        return seed_var * seed_var_df / chi2.ppf(0.3, seed_var_df)
    return seed_var


def seeds_to_detect(diff: float, n: int, var_examples_one: float, seed_var: float, interaction_one: float,
                    seed_var_df: float = math.inf, alpha: float = 0.05, power: float = 0.8, most: int = 1000) -> float:
    """Seeds per arm (paired) at which a true Δ of `diff` is detected with this power at level
    alpha, by the variance model (`planned_se`), with σ²_u (seed_var, estimated on seed_var_df
    degrees of freedom) at its upper 70% bound (`seed_var_bound`). inf beyond `most` or when diff is 0."""
    if diff == 0:
        return math.inf
    seed_var = seed_var_bound(seed_var, seed_var_df)
    for s in range(2, most + 1):
        if detectable(*planned_se(n, var_examples_one, seed_var, interaction_one, s), alpha, power) <= abs(diff):
            return float(s)
    return math.inf


def format_mean_std(mean: float, std: float | None, digits: int = 3, n: int | None = None) -> str:
    """"0.812 ± 0.004"; just "0.812" for one seed (n == 1) or when std is None/NaN."""
    if std is None or (isinstance(std, float) and math.isnan(std)) or n == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
