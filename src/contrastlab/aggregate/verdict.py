"""The verdict of a study, one line per comparison, and the report's landing page.

Each line: Δ to the reference with its 95% interval, the Holm-adjusted p over all comparisons,
a word (better, worse, no detectable difference, or collapsed), and the minimum detectable
difference at this test size and number of seeds (80% power, unadjusted 0.05 level). With one
seed it says that seed-to-seed variance is not measured, and how many seeds a Δ of the observed
size would need for 80% power (not estimated when the reference ran more seeds than the cell).
"""
from __future__ import annotations

import math

import pandas as pd

from .collect import Study


def _signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_lines(study: Study, comp: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in comp[comp["diff"].notna()].iterrows():
        seeds = int(r["seeds"])
        head = (f"**{r['cell']}** vs {r['reference']}: Δ {_signed(r['diff'])} "
                f"[{_signed(r['lo'])}, {_signed(r['hi'])}], Holm p {_p(r['p_holm'])}")
        if r["verdict"] == "collapsed":
            lines.append(f"{head} → **collapsed**: {r['collapsed']}; its Δ measures the collapse, not the method")
            continue
        if r["verdict"] == "reference collapsed":
            lines.append(f"{head} → **reference collapsed** ({r['reference']} is degenerate): this Δ says nothing "
                         "of the method")
            continue
        size = f"MDD {r['mdd']:.3f} at 80% power ({int(r['n_test'])} test examples, {seeds} seed{'s' * (seeds > 1)})"
        if seeds == 1:
            size += "; one seed: seed-to-seed variance is not measured"
            need = r["seeds_needed"]  # NaN when the reference ran more seeds: not estimated
            if not pd.isna(need):
                # a statement of power (the MDD's 80%), so it holds whatever the verdict: a Δ can be
                # real below the MDD, or reach it and still fail Holm's bar over many comparisons
                size += ("; no difference to detect" if math.isinf(need) else
                         f"; a Δ of {abs(r['diff']):.3f} would need ≥ {int(need)} seeds for 80% power" if need > 1 else
                         "; one seed has 80% power for a Δ this size")
        lines.append(f"{head} → **{r['verdict']}**; {size}")
    return lines


def verdict_table(comp: pd.DataFrame) -> pd.DataFrame:
    cols = ["cell", "reference", "diff", "lo", "hi", "p", "p_holm", "verdict", "mdd", "seeds", "seeds_needed",
            "n_test", "collapsed"]
    return comp.loc[comp["diff"].notna(), cols].reset_index(drop=True)


def landing_page(study: Study, comp: pd.DataFrame) -> str:
    """reStructuredText of the report's first page: the study, then the verdict."""
    m = study.meta
    n_cells, n_runs = len(study.cells), len(study.runs)
    seeds = sorted(set(study.runs["seed"].astype(int)))
    lines = [f"**Study** ``{m.get('source', '?')}``: {n_cells} cells x {len(seeds)} seed(s) "
             f"({', '.join(map(str, seeds))}) = {n_runs} training runs; baseline ``{study.baseline}``.", "",
             f"- **Model**: ``{m.get('model', '?')}``; precision {m.get('precision', '?')}; ran on {m.get('devices', '?')}.",
             f"- **Data**: {'; '.join(filter(None, [m.get('data', '?'), m.get('sizes')]))}.", ""]
    verdict = verdict_lines(study, comp)
    lines += ["**Verdict** (Δ test accuracy to each cell's reference, 95% paired-bootstrap interval, Holm-adjusted "
              "p over all comparisons, minimum detectable difference at 80% power):", ""]
    lines += [f"- {v}" for v in verdict] or ["- only the baseline: nothing to compare"]
    lines += ["", "The tables and figures are under *Tables* and *Figures*; every cell's own figures under *Cells*."]
    return "\n".join(lines) + "\n"
