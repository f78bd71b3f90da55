"""Each cell's test-accuracy difference to its reference, paired on the same test examples, and
the word that says what it means (README "What the tables say").

Δ = accuracy(cell) − accuracy(reference), both averaged over seeds; its interval, p-value and
standard error come from `stats.paired_difference` (one variance model: test examples, seeds,
their interaction; one t statistic). A one-seed comparison takes its seed variance from
`analysis.seed_sd` (a pilot) or pools it over the study's multi-seed comparisons; without either
it can only be provisional. Holm's family is every comparison whose cell and reference are not
degenerate; `mdd` is the difference detectable with 80% power at the level of Holm's step the
comparison stands at (`holm_level`). The words:

    collapsed            the cell is degenerate (contrastlab.analysis.metrics.collapse): its Δ measures that
    reference collapsed  its reference is: the Δ says nothing of the method (out of Holm's family)
    better / worse       Holm-adjusted p < 0.05, the seed variance estimated
    equivalent           the 90% interval (TOST at 0.05) lies inside ±analysis.equivalence_margin
    provisional          one seed, no seed-variance estimate, and the test-set noise alone would say
                         better, worse or equivalent
    undecided            none of these: the line gives the MDD

McNemar's test per shared seed is a cross-check; with >= 5 seeds per arm, the Almost Stochastic
Order test (Dror et al. 2019, the `deepsig` package) gives ε_min of the per-seed accuracies.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from contrastlab.plan.config import AnalysisConfig
from contrastlab.analysis.stats import detectable, holm, holm_levels, mcnemar, paired_difference, pool_seed_var, seeds_to_detect
from contrastlab.analysis.aggregate.collect import Study

log = logging.getLogger("contrastlab.analysis.aggregate")
ALPHA = 0.05
ASO_SEEDS = 5
DEFAULTS = AnalysisConfig().model_dump()  # the defaults live in config.py
COLUMNS = ["cell", "reference", "n_test", "seeds", "paired_seeds", "diff", "lo", "hi", "se", "df", "p", "p_holm",
           "holm_level", "mcnemar_p", "mdd", "seeds_needed", "se_examples", "se_seeds", "se_interaction", "seed_sd",
           "seed_sd_from", "tost_lo", "tost_hi", "aso_eps_min", "significant", "verdict", "collapsed"]


def compare_all(study: Study, analysis: dict | None = None) -> pd.DataFrame:
    """One row per cell (reference rows included, with NaN differences), in display order."""
    cfg = DEFAULTS | (analysis or {})
    base, cache, raw = {}, {}, {}

    def correct(cell):
        if cell not in cache:
            cache[cell] = study.correct(cell)
        return cache[cell]

    for cell, info in study.cells.items():
        row = dict.fromkeys(COLUMNS, np.nan) | {"cell": cell, "reference": info.reference, "significant": False,
                                                "verdict": "reference", "collapsed": study.collapsed(cell) or "",
                                                "seed_sd_from": ""}
        base[cell] = row
        if cell != info.reference:
            raw[cell] = row | compare(correct(info.reference), correct(cell), n_boot=cfg["n_boot"])
    degenerate = {c for c, r in base.items() if r["collapsed"]}
    seed_var = _seed_variance(cfg, [r for r in raw.values() if r["cell"] not in degenerate
                                    and r["reference"] not in degenerate])
    for cell, r in raw.items():
        if not r["seed_known"] and seed_var is not None:
            info = study.cells[cell]
            r.update(compare(correct(info.reference), correct(cell), seed_var, cfg["n_boot"]))
    out = pd.DataFrame([raw.get(c, base[c]) for c in base], columns=COLUMNS + ["seed_known"])
    family = out["diff"].notna() & ~out["cell"].isin(degenerate) & ~out["reference"].isin(degenerate)
    p = out["p"].where(family).to_numpy(dtype=float)
    out["p_holm"], out["holm_level"] = holm(p), holm_levels(p, ALPHA)
    for i in np.flatnonzero(family):
        _judge(out, i, cfg, seed_var)
    compared = out["diff"].notna()
    out.loc[compared & ~family, "verdict"] = ["collapsed" if c in degenerate else "reference collapsed"
                                              for c in out.loc[compared & ~family, "cell"]]
    return out.drop(columns="seed_known")


def _seed_variance(cfg: dict, rows: list[dict]):
    """(variance of one seed's Δ, its df, where it comes from), or None."""
    if cfg.get("seed_sd") is not None:
        return cfg["seed_sd"] ** 2, math.inf, "analysis.seed_sd (a pilot)"
    multi = [(r["seed_var"], r["seed_var_df"]) for r in rows if r["seeds"] > 1 and r["seed_known"]]
    pooled = pool_seed_var(multi)
    if pooled is None:
        return None
    return pooled[0], pooled[1], f"pooled over this study's {len(multi)} multi-seed comparison{'s' * (len(multi) > 1)}"


def _judge(out: pd.DataFrame, i: int, cfg: dict, seed_var) -> None:
    """The word, the MDD at the comparison's Holm level, TOST and the seeds it would need."""
    r = out.iloc[i]
    level, delta = float(r["holm_level"]), float(cfg["equivalence_margin"])
    half = student_t.ppf(1 - ALPHA, r["df"]) * r["se"]  # the 90% interval: TOST at 0.05
    tost_lo, tost_hi = r["diff"] - half, r["diff"] + half
    significant = r["p_holm"] < ALPHA
    equivalent = -delta < tost_lo and tost_hi < delta
    if not r["seed_known"]:
        word = "provisional" if significant or equivalent else "undecided"
    else:
        word = ("better" if r["diff"] > 0 else "worse") if significant else "equivalent" if equivalent else "undecided"
    need = np.nan
    if word == "undecided" and r["seed_known"]:
        s = int(r["seeds"])
        need = seeds_to_detect(r["diff"], int(r["n_test"]), r["se_examples"] ** 2, r["seed_sd"] ** 2,
                               r["se_interaction"] ** 2 * s, _seed_df(r, seed_var), alpha=level)
    col = out.columns.get_loc
    out.iloc[i, [col("tost_lo"), col("tost_hi"), col("mdd"), col("seeds_needed"), col("significant"),
                 col("verdict")]] = [tost_lo, tost_hi, detectable(r["se"], r["df"], level), need,
                                     bool(significant and r["seed_known"]), word]


def _seed_df(r, seed_var) -> float:
    if int(r["seeds"]) > 1:
        return float(r["seeds"]) - 1
    return seed_var[1] if seed_var is not None else math.inf


def compare(ref: pd.DataFrame, cell: pd.DataFrame, seed_var: tuple | None = None, n_boot: int = 1000) -> dict:
    """ref, cell: [seeds x test examples] bool, columns = test example ids -> the comparison's
    numbers (see COLUMNS). Only the test examples both arms scored count (normally all: cells
    sharing the data config score the same split); seeds pair when both ran the same seeds.
    seed_var: (variance of one seed's Δ, df, source) for a comparison with one seed."""
    common = ref.columns.intersection(cell.columns)
    if len(common) == 0:
        raise ValueError("the cell and its reference share no test examples: different data configs?")
    if len(common) < max(len(ref.columns), len(cell.columns)):
        log.warning("comparing on the %d test examples both arms scored (of %d and %d)",
                    len(common), len(ref.columns), len(cell.columns))
    shared = sorted(set(ref.index) & set(cell.index))
    paired = len(shared) == len(ref.index) == len(cell.index)
    a, b = ref[common].to_numpy(bool), cell[common].to_numpy(bool)
    kw = {"seed_var": seed_var[0], "seed_df": seed_var[1]} if seed_var else {}
    r = paired_difference(a, b, paired_seeds=paired, **kw)
    mc = [mcnemar(ref.loc[s, common].to_numpy(bool), cell.loc[s, common].to_numpy(bool))["p"] for s in shared]
    one_seed = min(len(ref.index), len(cell.index)) == 1
    return {"diff": r["diff"], "lo": r["lo"], "hi": r["hi"], "se": r["se"], "df": r["df"], "p": r["p"],
            "n_test": len(common), "seeds": len(cell.index), "paired_seeds": paired,
            "mcnemar_p": float(np.median(mc)) if mc else np.nan,
            "se_examples": math.sqrt(r["var_examples"]), "se_seeds": math.sqrt(r["var_seeds"]),
            "se_interaction": math.sqrt(max(r["var_interaction"], 0.0)),
            "seed_sd": math.sqrt(r["seed_var"]) if r["seed_var_known"] else np.nan,
            "seed_var": r["seed_var"], "seed_var_df": r["seed_var_df"], "seed_known": r["seed_var_known"],
            "seed_sd_from": (seed_var[2] if seed_var and one_seed else "these seeds" if r["seed_var_known"] else ""),
            "aso_eps_min": aso(a.mean(1), b.mean(1), n_boot) if min(len(a), len(b)) >= ASO_SEEDS else np.nan}


def aso(ref_scores: np.ndarray, cell_scores: np.ndarray, n_boot: int = 1000) -> float:
    """ε_min of Almost Stochastic Order (Dror et al. 2019; deepsig): below 0.5 the cell's per-seed
    accuracies are stochastically larger than the reference's (0: completely), above it smaller."""
    from deepsig import aso as deepsig_aso  # imported here: it loads torch, needed only with >= 5 seeds

    return float(deepsig_aso(np.asarray(cell_scores, float), np.asarray(ref_scores, float),
                             num_bootstrap_iterations=n_boot, show_progress=False, seed=0))
