"""Seeds added until decided: group-sequential looks at each comparison, with alpha spending.

A study whose `seeds` is a schedule (`{start: 3, max: 10, step: 1, boundary: obrien-fleming}`)
looks at each comparison when its cell and reference have run `start` seeds, then after every
`step` more, up to `max`. At each look the comparison's own verdict statistic is computed on the
seeds run so far (`stats.difference_batch`: the t statistic on Satterthwaite's df, at most S − 1
when seeds dominate), and the comparison is decided at the first look where

    better / worse   its two-sided p is at most the look's nominal level (the alpha spent there)
    equivalent       TOST at the look's nominal equivalence level: the interval lies inside ±δ
    MDD ≤ target     the difference it could detect (80% power, at the look's level) is at most
                     analysis.target_mdd: a difference that matters would have been seen

otherwise it stays open (more seeds are run) or, at `max`, stops undecided.

The nominal levels come from a Lan-DeMets spending function (O'Brien-Fleming-type by default:
almost nothing is spent at the first looks; Pocock: evenly), turned into boundaries by the
recursive integration of Armitage, McPherson and Rowe (1969) over the looks so far, for a
statistic with independent increments and information fraction t = seeds / max. The test
examples' share of the variance does not shrink with seeds, so the real looks are more
correlated than t assumes, which only makes the error rate lower. The boundary on the normal
scale is applied to the t statistic's p-value (the usual practice for t tests), and
tests/test_sequential.py checks the false-positive rate by simulation at few seeds. Equivalence
spends its own 5% (one-sided per side, as TOST) the same way. Stopping for a small MDD never
rejects, so it costs no error.

The error is controlled per comparison over its looks; Holm's adjustment over the study's
comparisons stays in the fixed-seed verdict beside it (contrastlab.analysis.aggregate.compare).

Every look is recomputed from the seeds on disk (seed prefixes are nested: the first s seeds of a
cell are the same runs at every later look), so the decision needs no state beyond the seeds each
cell ran: `sequential_seeds.json` (layout.sequential_seeds_file), which the outer loop
(contrastlab.operations.runloop) grows and the DAG build reads.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm, t as student_t

from contrastlab.analysis.stats import detectable, difference_batch

ALPHA = 0.05  # two-sided, per comparison, over its looks
EQUIVALENCE_ALPHA = 0.05  # one-sided per side, as TOST
BOUNDARIES = ("obrien-fleming", "pocock")
_GRID = 1201  # points of the continuation region in the recursive integration


def spent(t: float, alpha: float, boundary: str) -> float:
    """The two-sided alpha spent by information fraction t (Lan & DeMets 1983)."""
    t = min(max(t, 0.0), 1.0)
    if t == 0:
        return 0.0
    if boundary == "obrien-fleming":
        return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    if boundary == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"boundary {boundary!r}: allowed {', '.join(BOUNDARIES)}")


@lru_cache(maxsize=256)
def nominal_levels(fractions: tuple[float, ...], alpha: float = ALPHA, boundary: str = "obrien-fleming") -> tuple:
    """The two-sided nominal p-level of each look at these increasing information fractions: the
    level at which the chance of a first crossing at look k, under no difference, is the alpha
    spent between looks k − 1 and k. Recursive integration of the continuation density of the
    score process B(t) (independent increments, Var B(t) = t)."""
    levels, prev_spent = [], 0.0
    x = dens = None  # the continuation region's grid and the density there (None before look 1)
    prev_t = 0.0
    for t in fractions:
        dt = t - prev_t
        share = spent(t, alpha, boundary) - prev_spent
        if dt <= 0 or share <= 0:
            levels.append(0.0)
            continue
        sd = math.sqrt(dt)
        if x is None:
            b = norm.ppf(1 - share / 2) * math.sqrt(t)
        else:
            w = dens * (x[1] - x[0])

            def exit_prob(b):
                return float(np.sum(w * (norm.sf((b - x) / sd) + norm.cdf((-b - x) / sd)))) - share
            hi = 12 * math.sqrt(t)
            b = brentq(exit_prob, 1e-9, hi) if exit_prob(1e-9) > 0 > exit_prob(hi) else hi
        new_x = np.linspace(-b, b, _GRID)
        if x is None:
            dens = norm.pdf(new_x, scale=sd)
        else:
            dens = (norm.pdf((new_x[:, None] - x[None, :]) / sd) / sd) @ (dens * (x[1] - x[0]))
        x, prev_t, prev_spent = new_x, t, prev_spent + share
        levels.append(float(2 * norm.sf(b / math.sqrt(t))))
    return tuple(levels)


def looks(start: int, most: int, step: int) -> list[int]:
    """The seeds at each look: start, start + step, ..., and `most` last."""
    out = list(range(start, most + 1, step))
    return out if out[-1] == most else out + [most]


def look_levels(start: int, most: int, step: int, boundary: str) -> tuple[list[int], tuple, tuple]:
    """(seeds at each look, two-sided nominal levels, one-sided nominal equivalence levels)."""
    seeds = looks(start, most, step)
    fractions = tuple(s / most for s in seeds)
    eq = tuple(a / 2 for a in nominal_levels(fractions, 2 * EQUIVALENCE_ALPHA, boundary))
    return seeds, nominal_levels(fractions, ALPHA, boundary), eq


def judge_look(diff, se, df, p, level: float, eq_level: float, margin: float) -> np.ndarray:
    """The word at one look, vectorised: 'better', 'worse', 'equivalent' or '' (open)."""
    diff, se, df, p = map(np.asarray, (diff, se, df, p))
    crossed = p <= level
    half = student_t.ppf(1 - eq_level, df) * se if eq_level > 0 else np.inf
    equivalent = (diff - half > -margin) & (diff + half < margin)
    return np.where(crossed, np.where(diff > 0, "better", "worse"), np.where(equivalent, "equivalent", ""))


def first_decision(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """words [looks, R] ('' = open) -> (the first decided word or '', its look index or -1), [R] each."""
    decided = words != ""
    any_ = decided.any(0)
    first = np.where(any_, decided.argmax(0), -1)
    word = np.where(any_, words[np.maximum(first, 0), np.arange(words.shape[1])], "")
    return word, first


def simulate_sequential(ref: np.ndarray, cell: np.ndarray, start: int, step: int, boundary: str | None,
                        margin: float = 0.01) -> dict[str, np.ndarray]:
    """The procedure on R simulated comparisons at once: ref, cell [R, max, N] 0/1 with seeds
    paired. boundary None: naive repeated testing, every look at the full 0.05 (and TOST at 0.05).
    -> {"word": first decision or '', "seeds": seeds at that look (max when undecided)}."""
    most = ref.shape[1]
    seeds, levels, eq = look_levels(start, most, step, boundary or "pocock")
    if boundary is None:
        levels, eq = (ALPHA,) * len(seeds), (EQUIVALENCE_ALPHA,) * len(seeds)
    words = []
    for s, a, e in zip(seeds, levels, eq):
        r = difference_batch(ref[:, :s], cell[:, :s])
        words.append(judge_look(r["diff"], r["se"], r["df"], r["p"], a, e, margin))
    word, first = first_decision(np.array(words))
    return {"word": word, "seeds": np.where(first >= 0, np.array(seeds)[first], most)}


def decide(ref: np.ndarray, cell: np.ndarray, schedule: dict, margin: float, target_mdd: float | None) -> dict:
    """One comparison of a study: ref, cell [seeds, N] bool, seed i of each the same seed number
    (the caller pairs them). Looks at every scheduled seed count these seeds reach, stops at the
    first decision. -> {looks, seeds, decision, stopped, level, p, mdd} (stopped: 'boundary',
    'equivalence', 'MDD below target', 'max seeds', or 'open': more seeds are due)."""
    most, have = schedule["max"], min(len(ref), len(cell))
    seeds, levels, eq = look_levels(schedule["start"], most, schedule["step"], schedule["boundary"])
    out = {"looks": 0, "seeds": have, "decision": "undecided", "stopped": "open", "level": math.nan,
           "p": math.nan, "mdd": math.nan, "diff": math.nan}
    for k, (s, a, e) in enumerate(zip(seeds, levels, eq)):
        if s > have:
            break
        r = difference_batch(ref[None, :s].astype(float), cell[None, :s].astype(float))
        diff, se, df, p = (float(r[x][0]) for x in ("diff", "se", "df", "p"))
        word = str(judge_look(diff, se, df, p, a, e, margin))
        mdd = detectable(se, df, a) if a > 0 else math.inf
        out.update(looks=k + 1, seeds=s, level=a, p=p, mdd=mdd, diff=diff)
        if word:
            return out | {"decision": word, "stopped": "boundary" if word != "equivalent" else "equivalence"}
        if target_mdd is not None and mdd <= target_mdd:
            return out | {"stopped": "MDD below target"}
        if s == most:
            return out | {"stopped": "max seeds"}
    return out


def why(row: dict, schedule: dict, target_mdd: float | None) -> str:
    """Why a comparison stopped (or goes on), in words for the tables."""
    at = f"at look {row['looks']} ({row['seeds']} seeds)"
    name = schedule["boundary"].replace("obrien-fleming", "O'Brien-Fleming").replace("pocock", "Pocock")
    return {"boundary": f"{row['decision']}: p {row['p']:.4f} ≤ {name} level {row['level']:.4f} {at}",
            "equivalence": f"equivalent: TOST at the spent level {at}",
            "MDD below target": f"MDD {row['mdd']:.3f} ≤ target {target_mdd} {at}: no difference of that size",
            "max seeds": f"undecided at max = {schedule['max']} seeds (MDD {row['mdd']:.3f})",
            "open": f"undecided {at}: {schedule['step']} more seed(s) due"}[row["stopped"]]
