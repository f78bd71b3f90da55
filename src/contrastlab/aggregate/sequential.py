"""A sequential study's table (results/sequential.csv): per comparison, its looks, the seeds it
took, its decision and why it stopped (contrastlab.sequential), and the landing page's lines."""
from __future__ import annotations

import pandas as pd

from ..sequential import decide, why
from .collect import Study

COLUMNS = ["cell", "reference", "looks", "seeds", "decision", "stopped", "diff", "p", "level", "mdd", "why"]


def sequential_rows(study: Study, comp: pd.DataFrame, schedule: dict, margin: float,
                    target_mdd: float | None) -> pd.DataFrame:
    """One row per comparison. A degenerate comparison (collapsed cell or reference) stops at
    once: more seeds would not make its Δ say anything of the method."""
    rows = []
    for _, r in comp[comp["diff"].notna()].iterrows():
        cell, ref = r["cell"], r["reference"]
        if r["verdict"] in ("collapsed", "reference collapsed"):
            rows.append({"cell": cell, "reference": ref, "looks": 0, "seeds": int(r["seeds"]),
                         "decision": r["verdict"], "stopped": "degenerate", "why": f"{r['verdict']}: no seeds added"})
            continue
        a, b = study.correct(ref), study.correct(cell)
        shared = sorted(set(a.index) & set(b.index))  # seeds 1..n of each: the cell's are the reference's first
        cols = a.columns.intersection(b.columns)
        out = decide(a.loc[shared, cols].to_numpy(bool), b.loc[shared, cols].to_numpy(bool), schedule, margin,
                     target_mdd)
        rows.append({"cell": cell, "reference": ref, **out, "why": why(out, schedule, target_mdd)})
    return pd.DataFrame(rows, columns=COLUMNS)


def landing_lines(rows: pd.DataFrame, schedule: dict) -> list[str]:
    """reStructuredText lines of the landing page's section on the looks."""
    name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[schedule["boundary"]]
    lines = [f"**Seeds added until decided** (seeds {schedule['start']} to {schedule['max']}, {schedule['step']} "
             f"per round; {name}-type alpha spending over each comparison's looks, 5% per comparison):", ""]
    lines += [f"- **{r['cell']}** vs {r['reference']}: {r['seeds']} seeds, {r['looks']} look(s) → {r['why']}"
              for _, r in rows.iterrows()] or ["- no comparison"]
    return lines + [""]
