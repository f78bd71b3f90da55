"""The text `contrastlab plan` prints: one row per comparison (its MDD at the planned seeds, the
seeds that reach the target, the cost), the totals, and the one-line reason a study cannot
reach its target within its most seeds (contrastlab.plan.power, contrastlab.plan.plan_cost)."""
from __future__ import annotations

import math

from contrastlab.plan.power import ALPHA, POWER, PlanLine

UNREACHABLE = 3  # the exit status of a plan whose target some comparison cannot reach


def _seeds(x: float) -> str:
    return "—" if math.isinf(x) else f"{x:.0f}"


def _hours(seconds: float) -> str:
    return "?" if math.isnan(seconds) else f"{seconds / 3600:.2f}"


def cell_seeds(lines: list[PlanLine], start: int) -> dict[str, int]:
    """Seeds each cell needs for its comparisons to reach the target (a reference as many as the
    most of its cells: seeds pair); at least the planned `start`, at most the comparison's most."""
    out: dict[str, int] = {}
    for ln in lines:
        s = int(min(ln.needed, ln.max_seeds))
        for cell in (ln.cell, ln.reference):
            out[cell] = max(out.get(cell, start), s)
    return out


def report(source: str, lines: list[PlanLine], target: float, run_cost: dict, cost_source: str | None) -> str:
    """The plan as Markdown-ish text (run_cost: {cell: plan_cost.RunCost}, {} when unmeasured)."""
    if not lines:
        return f"Plan for {source}: no comparison (one experiment, or every cell is its own reference)."
    seeds, most, m = lines[0].seeds, lines[0].max_seeds, len(lines)
    sources = sorted({ln.variance.source for ln in lines})
    out = [f"Plan for {source}: {m} comparison(s), {seeds} seed(s) planned (at most {most}), target MDD "
           f"{target:.3f} (analysis.target_mdd), at {POWER:.0%} power and Holm's first step "
           f"(level {ALPHA}/{m} = {ALPHA / m:.4f}).",
           f"Variance: {'; '.join(sources)}; seed variance: {lines[0].variance.seed_source}.",
           f"Cost: {cost_source}." if cost_source else
           "Cost: not measured (give --pilot STEPS, --earlier RESULTS_DIR or --flops PAPER_COST_JSON).", "",
           f"| comparison | vs | test N | MDD at {seeds} seed(s) | seeds for {target:.3f} | MDD at {most} | "
           "device-hours per seed | per seed: how |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
    for ln in lines:
        c = run_cost.get(ln.cell)
        out.append(f"| {ln.cell} | {ln.reference} | {ln.n_test} | {ln.mdd:.4f} | {_seeds(ln.needed)} | "
                   f"{ln.mdd_at_max:.4f} | {_hours(c.seconds) if c else '?'} | {c.how if c else ''} |")
    if run_cost:
        cells = sorted({x for ln in lines for x in (ln.cell, ln.reference)})
        planned = sum(run_cost[c].seconds * seeds for c in cells)
        need = cell_seeds(lines, seeds)
        reach = sum(run_cost[c].seconds * need[c] for c in cells)
        out += ["", f"Total: {len(cells)} cells x {seeds} seed(s) = {_hours(planned)} device-hours; with the seeds "
                f"that reach the target (at most {most}; a reference runs as many as the most of its cells): "
                f"{sum(need.values())} runs, {_hours(reach)} device-hours."]
    return "\n".join(out)


def unreachable(lines: list[PlanLine], target: float) -> str | None:
    """One line saying which comparisons cannot reach the target within their most seeds and what
    would (more test examples, or, past the seeds' floor, more seeds); None when all can."""
    short = [ln for ln in lines if math.isinf(ln.needed)]
    if not short:
        return None
    worst = max(short, key=lambda ln: ln.mdd_at_max)
    tests = [ln.test_needed for ln in short]
    if all(math.isfinite(t) for t in tests):
        fix = (f"about {max(tests):,.0f} test examples would (data.max_eval, a larger test split, or "
               f"--n-test to plan one)")
    else:
        fix = (f"no test size would: the seed-to-seed spread alone exceeds it at {worst.max_seeds} seeds; "
               "allow more seeds (seeds.max) or set a larger analysis.target_mdd")
    return (f"plan: {len(short)} of {len(lines)} comparison(s) cannot reach MDD {target:.3f} within "
            f"{worst.max_seeds} seeds (worst: {worst.cell} vs {worst.reference}, {worst.mdd_at_max:.4f} at "
            f"{worst.max_seeds} seeds on {worst.n_test} test examples); {fix}")
