"""The figures of every study, built from a `Study` with the helpers of `contrastlab.analysis.plots`; a
family's own figures are in its package (contrastlab.objectives.families.<family>.report).

Curves use each cell's first seed (the per-cell figures show every seed); bars and the forest
plot use the mean over seeds. A figure whose cells are missing says so in a placeholder image.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from contrastlab.operations.io import atomic_path  # noqa: E402
from contrastlab.analysis.plots import DPI, plot_forest, plot_seed_strips, smooth  # noqa: E402
from contrastlab.analysis.aggregate.collect import Study  # noqa: E402
from contrastlab.analysis.aggregate.tables import cell_label, fmt_param, param_value  # noqa: E402


def save_figure(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def placeholder(path, text: str) -> None:
    """A small PNG that says why there is nothing to show (keeps the DAG's outputs fixed)."""
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.axis("off")
    save_figure(fig, path)


def _label(study: Study, cell: str, keys: list[str]) -> str:
    vals = [f"{k}={fmt_param(param_value(study, cell, k))}" for k in keys if param_value(study, cell, k) is not None]
    return ", ".join(vals) if vals else cell


def _labels(study: Study, cells: list[str], keys: list[str]) -> dict[str, str]:
    """Legend labels: each cell's values of `keys`, or the cell names where those would not tell
    the cells apart (experiments of one family that differ in unswept params, e.g. scl_nonorm)."""
    labels = {c: _label(study, c, keys) for c in cells}
    return labels if len(set(labels.values())) == len(labels) else {c: c for c in cells}


def forest(study: Study, comp: pd.DataFrame, path) -> None:
    df = comp[comp["diff"].notna()].copy()
    if df.empty:
        return placeholder(path, "Only the baseline in this grid: no differences to show.")
    if set(df["reference"]) != {study.baseline}:
        df["cell"] = [f"{c} (vs {r})" for c, r in zip(df["cell"], df["reference"])]
    margin = study.meta.get("equivalence_margin", 0.01)
    plot_forest(df[["cell", "diff", "lo", "hi", "verdict", "mdd"]], path, margin=margin,
                title="Test accuracy: cell − reference (95% t interval over test examples and seeds)",
                xlabel=f"Δ accuracy (grey band per row: its MDD at its Holm level; blue band: ±{margin:g}; "
                       "degenerate cells at the edge)")


def seed_scores(study: Study, comp: pd.DataFrame, path) -> None:
    """Per family: each cell's per-seed test accuracy beside its reference's, when some cell ran
    >= 2 seeds (the comparison tables' spread, seed by seed)."""
    if max(len(study.seeds(c)) for c in study.cells) < 2:
        return placeholder(path, "One seed per cell: no seed-to-seed spread to show.")
    runs = study.runs.set_index("cell")
    panels = []
    for family in dict.fromkeys(i.family for i in study.cells.values()):
        cells = study.ordered(study.of_family(family))
        panels.append((family, {cell_label(study, c): runs.loc[[c], "accuracy"].to_numpy(float) for c in cells}))
    plot_seed_strips(panels, path, "Test accuracy per seed (dots) and its mean (bar), each family beside its "
                                   "references")


def _family_panels(study: Study):
    fams = list(dict.fromkeys(i.family for i in study.cells.values()))
    panels = [(f, study.of_family(f)) for f in fams]
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    return panels, nrow, ncol


def _draw(ax, h: pd.DataFrame, column, label, color, ls="-", faint=True, x="step"):
    y = h[column]
    if faint:
        ax.plot(h[x], y, color=color, alpha=0.15, lw=0.7, ls=ls)
    ax.plot(h[x], smooth(y), color=color, lw=1.5, ls=ls, label=label)


def _ce_column(study: Study, cell: str, h: pd.DataFrame) -> str:
    """The classification term of a cell's history (the objective's `ce_term`, in metrics.json)."""
    term = study.runs.loc[study.runs["cell"] == cell, "ce_term"].dropna()
    column = f"loss_{term.iloc[0]}" if len(term) else "loss_ce"
    return column if column in h else "loss"


def _sweep_keys(study: Study, cells: list[str]) -> list[str]:
    return list(dict.fromkeys(k.rpartition(".")[2] for c in cells for k in study.cells[c].sweep))


def _off_unused(axes, used: int, ncol: int, rows_per_panel: int = 1) -> None:
    for k in range(used, axes.shape[1] * axes.shape[0] // rows_per_panel):
        for r in range(rows_per_panel):
            axes[rows_per_panel * (k // ncol) + r, k % ncol].axis("off")


def _paired_panels(study: Study, height: float):
    """A figure with two rows of axes per family panel: -> (fig, axes, [(family, cells, top,
    bottom, legend labels)]); the unused axes are switched off."""
    panels, nrow, ncol = _family_panels(study)
    fig, axes = plt.subplots(2 * nrow, ncol, figsize=(4.2 * ncol, height * nrow), squeeze=False)
    _off_unused(axes, len(panels), ncol, 2)
    return fig, [(family, cells, axes[2 * (i // ncol), i % ncol], axes[2 * (i // ncol) + 1, i % ncol],
                  {c: l + (" ⚠" if study.collapsed(c) else "") for c, l in
                   _labels(study, cells, _sweep_keys(study, cells)).items()})
                 for i, (family, cells) in enumerate(panels)]


def _styles(cells: list[str]) -> list[tuple[str, str, str]]:
    """(cell, colour, line style) of a panel's cells: ten colours, then the same ten dashed."""
    return [(c, f"C{j % 10}", "-" if j < 10 else "--") for j, c in enumerate(cells)]


def _finish(fig, title: str, path) -> None:
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def loss_curves(study: Study, comp: pd.DataFrame, path) -> None:
    """Top row: the total loss of each family's cells; bottom row: their classification term
    (CE, focal CE, or the mean of R-Drop's two CEs), with the baseline's CE dashed for reference."""
    fig, panels = _paired_panels(study, 6.4)
    base = study.history(study.baseline)
    for family, cells, top, bottom, labels in panels:
        for c, color, ls in _styles(cells):
            h = study.history(c)
            _draw(top, h, "loss", labels[c], color, ls)
            _draw(bottom, h, _ce_column(study, c, h), None, color, ls)
        if family != study.cells[study.baseline].family:
            _draw(bottom, base, _ce_column(study, study.baseline, base), f"{study.baseline} (CE)", "k", "--", faint=False)
            bottom.legend(frameon=False, fontsize="x-small", loc="upper right")
        top.set(title=f"{family}: total loss", xlabel="optimizer step", ylabel="loss")
        bottom.set(title=f"{family}: classification term", xlabel="optimizer step", ylabel="CE")
        top.legend(frameon=False, fontsize="x-small", loc="upper right", ncol=1 + len(cells) // 8)
    _finish(fig, "Training loss by family (first seed; faint: per step, bold: rolling mean; ⚠ collapsed)", path)


def grad_norm(study: Study, comp: pd.DataFrame, path) -> None:
    """Gradient norm (before clipping, log scale) of each family's cells, the baseline dashed."""
    panels, nrow, ncol = _family_panels(study)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    base = study.history(study.baseline)
    for i, (title, cells) in enumerate(panels):
        ax = axes[i // ncol, i % ncol]
        colors = {c: f"C{j % 10}" for j, c in enumerate(cells)}
        labels = _labels(study, cells, _sweep_keys(study, cells))
        for j, c in enumerate(cells):
            _draw(ax, study.history(c), "grad_norm", labels[c], colors[c], "-" if j < 10 else "--")
        if study.baseline not in cells:
            _draw(ax, base, "grad_norm", study.baseline, "k", "--", faint=False)
        if any((study.history(c)["grad_norm"] > 0).any() for c in cells):
            ax.set_yscale("log")
        ax.set(title=title, xlabel="optimizer step", ylabel="gradient norm")
        ax.legend(frameon=False, fontsize="x-small", loc="upper right", ncol=1 + len(cells) // 8)
    _off_unused(axes, len(panels), ncol)
    fig.suptitle("Gradient norm before clipping (first seed; bold: rolling mean)")
    fig.tight_layout()
    save_figure(fig, path)


def val_curves(study: Study, comp: pd.DataFrame, path) -> None:
    """Per family: validation accuracy (top) and loss (bottom) at each validation of each cell,
    the baseline dashed; a cell trained with train.select best_val is tested at its best point."""
    fig, panels = _paired_panels(study, 6.0)
    base = study.epochs(study.baseline)
    for family, cells, top, bottom, labels in panels:
        for c, color, ls in _styles(cells):
            e = study.epochs(c)
            top.plot(e["step"], e["val_accuracy"], "o", color=color, ls=ls, ms=3, label=labels[c])
            bottom.plot(e["step"], e["val_loss"], "o", color=color, ls=ls, ms=3)
        if family != study.cells[study.baseline].family:
            top.plot(base["step"], base["val_accuracy"], "k--", lw=1, label=study.baseline)
            bottom.plot(base["step"], base["val_loss"], "k--", lw=1)
        top.set(title=f"{family}: validation accuracy", xlabel="optimizer step", ylabel="accuracy")
        bottom.set(title=f"{family}: validation loss", xlabel="optimizer step", ylabel="cross-entropy")
        top.legend(frameon=False, fontsize="x-small", loc="lower right", ncol=1 + len(cells) // 8)
    _finish(fig, "Validation after each epoch (or every train.eval_every steps), first seed", path)
