"""A sequential study's table (results/sequential.csv): per comparison, its looks, the seeds it
took, its decision and why it stopped (contrastlab.analysis.sequential), and the landing page's lines."""
from __future__ import annotations

import pandas as pd

from contrastlab.analysis.sequential import decide, why
from contrastlab.analysis.aggregate.collect import Study

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


def cost_to_decide(rows: pd.DataFrame, schedule: dict, run_seconds: float | None) -> str | None:
    """What the open comparisons would still cost: the runs `contrastlab run` may add (each open
    comparison's cell and reference up to max seeds, a shared cell counted once) and their training
    time at the study's median per run; None when nothing is open."""
    open_rows = rows[rows["stopped"] == "open"]
    if open_rows.empty:
        return None
    need = {}
    for _, r in open_rows.iterrows():
        for cell in (r["cell"], r["reference"]):
            need[cell] = max(need.get(cell, 0), schedule["max"] - int(r["seeds"]))
    runs = sum(need.values())
    time = (f", about {runs * run_seconds / 3600:.1f} h of training at this study's median {run_seconds:.0f} s "
            f"per run" if run_seconds else "")
    return (f"To decide the {len(open_rows)} open comparison(s): `contrastlab run <config>` adds seeds to their "
            f"cells, at most {runs} more runs{time}.")


def landing_lines(rows: pd.DataFrame, schedule: dict, run_seconds: float | None = None) -> list[str]:
    """reStructuredText lines of the landing page's section on the looks."""
    name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[schedule["boundary"]]
    lines = [f"**Seeds added until decided** (seeds {schedule['start']} to {schedule['max']}, {schedule['step']} "
             f"per round; {name}-type alpha spending over each comparison's looks, 5% per comparison; "
             f"an early look needs stronger evidence than the fixed verdict above, which treats the seeds "
             f"run so far as the whole study):", ""]
    lines += [f"- **{r['cell']}** vs {r['reference']}: {r['seeds']} seeds, {r['looks']} look(s) → {r['why']}"
              for _, r in rows.iterrows()] or ["- no comparison"]
    cost = cost_to_decide(rows, schedule, run_seconds)
    return lines + ([""] + [cost] if cost else []) + [""]
