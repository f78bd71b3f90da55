"""The verdict of a study, one line per comparison, and the report's landing page.

Each line: Δ to the reference with its 95% interval, the Holm-adjusted p over the comparisons
whose arms are not degenerate, a word (better, worse, equivalent within ±δ, undecided,
provisional, collapsed, reference collapsed: see aggregate.compare), where the seed variance
came from, and for an undecided line the minimum detectable difference at 80% power at the
level of its Holm step and the seeds a Δ of the observed size would need; and, when the two arms'
training FLOPs differ by more than 5%, that the comparison is not compute-matched (contrastlab.plan.cost).
"""
from __future__ import annotations

import math

import pandas as pd

from contrastlab.plan.cost import compute_remark
from contrastlab.analysis.aggregate.collect import Study


def _signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _mean(study: Study, cell: str, metric: str) -> float:
    if metric not in study.runs:
        return math.nan
    return float(pd.to_numeric(study.runs.loc[study.runs["cell"] == cell, metric], errors="coerce").mean())


def verdict_lines(study: Study, comp: pd.DataFrame, margin: float = 0.01) -> list[str]:
    lines = []
    for _, r in comp[comp["diff"].notna()].iterrows():
        seeds = int(r["seeds"])
        head = f"**{r['cell']}** vs {r['reference']}: Δ {_signed(r['diff'])} [{_signed(r['lo'])}, {_signed(r['hi'])}]"
        if r["verdict"] == "collapsed":
            lines.append(f"{head} → **collapsed**: {r['collapsed']}; its Δ measures the collapse, not the method "
                         "(outside Holm's family)")
            continue
        if r["verdict"] == "reference collapsed":
            lines.append(f"{head} → **reference collapsed** ({r['reference']} is degenerate): this Δ says nothing "
                         "of the method (outside Holm's family)")
            continue
        head += f", Holm p {_p(r['p_holm'])}"
        size = f"{int(r['n_test'])} test examples, {seeds} seed{'s' * (seeds > 1)}"
        source = (f"seed SD {r['seed_sd']:.3f} from {r['seed_sd_from']}" if r["seed_sd_from"] else
                  "seed variance not measured (one seed; set analysis.seed_sd from a pilot or run >= 2 seeds)")
        word = r["verdict"]
        if word == "equivalent":
            word = f"equivalent within ±{margin:g}"
        elif word == "provisional":
            lean = "better" if r["diff"] > 0 else "worse"
            word = (f"provisional** (test-set noise alone says {lean if r['p_holm'] < 0.05 else 'equivalent'}; "
                    "the seed-to-seed spread could undo it)**")
        extra = ""
        if r["verdict"] in ("undecided", "provisional"):
            extra = f"; MDD {r['mdd']:.3f} at 80% power at Holm level {r['holm_level']:.4f}"
            need = r["seeds_needed"]
            if not pd.isna(need):
                extra += (f"; a true Δ of {abs(r['diff']):.3f} needs > 1000 seeds" if math.isinf(need) else
                          f"; a true Δ of {abs(r['diff']):.3f} needs {int(need)} seeds for 80% power")
        if not pd.isna(r["aso_eps_min"]):  # Almost Stochastic Order over the seeds (>= 5 per arm)
            extra += f"; ASO ε_min {r['aso_eps_min']:.2f} (< 0.5: the cell's seeds score higher)"
        matched = compute_remark(_mean(study, r["cell"], "train_flops"), _mean(study, r["reference"], "train_flops"))
        extra += f"; {matched}" if matched else ""
        lines.append(f"{head} → **{word}** ({size}; {source}){extra}")
    return lines


def landing_page(study: Study, comp: pd.DataFrame, margin: float = 0.01, sequential: list[str] = ()) -> str:
    """reStructuredText of the report's first page: the study, then the verdict (and a sequential
    study's looks: aggregate.sequential.landing_lines)."""
    m = study.meta
    n_cells, n_runs = len(study.cells), len(study.runs)
    seeds = sorted(set(study.runs["seed"].astype(int)))
    lines = [f"**Study** ``{m.get('source', '?')}``: {n_cells} cells x {len(seeds)} seed(s) "
             f"({', '.join(map(str, seeds))}) = {n_runs} training runs; baseline ``{study.baseline}``.", "",
             f"- **Model**: ``{m.get('model', '?')}``; precision {m.get('precision', '?')}; ran on {m.get('devices', '?')}.",
             f"- **Data**: {'; '.join(filter(None, [m.get('data', '?'), m.get('sizes')]))}.", ""]
    verdict = verdict_lines(study, comp, margin)
    lines += ["**Verdict** (Δ test accuracy to each cell's reference, 95% t interval over test examples and seeds, "
              "Holm-adjusted p over the comparisons of non-degenerate cells; words: better, worse, equivalent, "
              "undecided with its minimum detectable difference at its Holm level, provisional, collapsed, "
              "reference collapsed):", ""]
    lines += [f"- {v}" for v in verdict] or ["- only the baseline: nothing to compare"]
    lines += ["", *sequential] if sequential else []
    lines += ["", "The tables and figures are under *Tables* and *Figures*; every cell's own figures under *Cells*."]
    return "\n".join(lines) + "\n"
