"""The study's figures, built from a `Study` with the helpers of `contrastlab.plots`.

Curves use each cell's first seed (the per-cell figures show every seed); bars and the forest
plot use the mean over seeds. A figure whose cells are missing says so in a placeholder image.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..plots import DPI, plot_bars, plot_forest, plot_tsne_grid, smooth  # noqa: E402
from .collect import Study  # noqa: E402
from .tables import cell_stats, fmt_param, param_value, ratio_to  # noqa: E402

CE_TERMS = (["loss_ce"], ["loss_focal_ce"], ["loss_ce1", "loss_ce2"])  # the classification term, by family


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def placeholder(path, text: str) -> None:
    """A small PNG that says why there is nothing to show (keeps the DAG's outputs fixed)."""
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.axis("off")
    _save(fig, path)


def _label(study: Study, cell: str, keys: list[str]) -> str:
    vals = [f"{k}={fmt_param(param_value(study, cell, k))}" for k in keys if param_value(study, cell, k) is not None]
    return ", ".join(vals) if vals else cell


L2_COLORS, RAW_COLORS = ["C0", "C2", "C9", "C4"], ["C3", "C1", "C6"]


def _labels(study: Study, cells: list[str], keys: list[str]) -> dict[str, str]:
    """Legend labels: each cell's values of `keys`, or the cell names where those would not tell
    the cells apart (experiments of one family that differ in unswept params, e.g. scl_nonorm)."""
    labels = {c: _label(study, c, keys) for c in cells}
    return labels if len(set(labels.values())) == len(labels) else {c: c for c in cells}


def forest(study: Study, comp: pd.DataFrame, path) -> None:
    df = comp[comp["diff"].notna()].copy()
    if df.empty:
        return placeholder(path, "Only the baseline in this grid: no differences to show.")
    refs = set(df["reference"])
    if refs != {study.baseline}:
        df["cell"] = [f"{c} (vs {r})" for c, r in zip(df["cell"], df["reference"])]
    plot_forest(df[["cell", "diff", "lo", "hi", "significant"]], path,
                title="Test accuracy: cell − baseline (95% paired-bootstrap CI)",
                xlabel="Δ accuracy (red: the interval excludes zero)")


def tsne_k_alpha(study: Study, comp: pd.DataFrame, path) -> None:
    cells = study.of_family("token")
    panels, names = {}, None
    for c in sorted(cells, key=lambda c: (float(param_value(study, c, "k") or 0),
                                          float(param_value(study, c, "alpha") or 0))):
        t = study.tsne(c)
        if t is None:
            continue
        names = [str(n) for n in t["label_names"]]
        panels[(f"k = {fmt_param(param_value(study, c, 'k'))}",
                f"α = {fmt_param(param_value(study, c, 'alpha'))}")] = (t["xy"], t["labels"])
    if not panels:
        return placeholder(path, "No t-SNE maps of token-family cells in this grid.")
    plot_tsne_grid(panels, names, path, title="t-SNE of the final [CLS] (probe split), token-level contrast")


def multilayer_bars(study: Study, comp: pd.DataFrame, path) -> None:
    cells = study.of_family("multilayer")
    if not cells:
        return placeholder(path, "No cells of family multilayer in this grid.")
    s = cell_stats(study, cells, ["accuracy"])
    s["layers"] = [fmt_param(param_value(study, c, "layers")) for c in cells]
    s["level"] = [fmt_param(param_value(study, c, "level")) for c in cells]
    s = s.rename(columns={"accuracy_mean": "test accuracy"})
    b = cell_stats(study, [study.baseline], ["accuracy"]).iloc[0]
    plot_bars(s, "layers", "test accuracy", "accuracy_std", "level", path,
              title=f"Multi-layer contrast (bars: mean ± std over seeds); "
                    f"{study.baseline}: {b['accuracy_mean']:.4f}")


def _family_panels(study: Study, extra: list | None = None):
    fams = list(dict.fromkeys(i.family for i in study.cells.values()))
    panels = (extra or []) + [(f, study.of_family(f)) for f in fams]
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    return panels, nrow, ncol


def _draw(ax, h: pd.DataFrame, column, label, color, ls="-", faint=True):
    y = h[column] if isinstance(column, str) else h[column].mean(axis=1)
    if faint:
        ax.plot(h["step"], y, color=color, alpha=0.15, lw=0.7, ls=ls)
    ax.plot(h["step"], smooth(y), color=color, lw=1.5, ls=ls, label=label)


def _ce_columns(h: pd.DataFrame):
    for cols in CE_TERMS:
        if all(c in h for c in cols):
            return cols[0] if len(cols) == 1 else cols
    return "loss"


def _sweep_keys(study: Study, cells: list[str]) -> list[str]:
    return list(dict.fromkeys(k.rpartition(".")[2] for c in cells for k in study.cells[c].sweep))


def loss_curves(study: Study, comp: pd.DataFrame, path) -> None:
    """Top row: the total loss of each family's cells; bottom row: their classification term
    (CE, focal CE, or the mean of R-Drop's two CEs), with the baseline's CE dashed for reference."""
    panels, _, ncol = _family_panels(study)
    fig, axes = plt.subplots(2 * math.ceil(len(panels) / ncol), ncol, figsize=(4.2 * ncol, 6.4 * math.ceil(len(panels) / ncol)),
                             squeeze=False)
    base = study.history(study.baseline)
    for i, (family, cells) in enumerate(panels):
        top, bottom = axes[2 * (i // ncol), i % ncol], axes[2 * (i // ncol) + 1, i % ncol]
        labels = _labels(study, cells, _sweep_keys(study, cells))
        for j, c in enumerate(cells):
            h = study.history(c)
            color, ls = f"C{j % 10}", "-" if j < 10 else "--"
            _draw(top, h, "loss", labels[c], color, ls)
            _draw(bottom, h, _ce_columns(h), None, color, ls)
        if family != study.cells[study.baseline].family:
            _draw(bottom, base, _ce_columns(base), f"{study.baseline} (CE)", "k", "--", faint=False)
            bottom.legend(frameon=False, fontsize="x-small", loc="upper right")
        top.set(title=f"{family}: total loss", xlabel="optimizer step", ylabel="loss")
        bottom.set(title=f"{family}: classification term", xlabel="optimizer step", ylabel="CE")
        top.legend(frameon=False, fontsize="x-small", loc="upper right", ncol=1 + len(cells) // 8)
    for k in range(len(panels), axes.shape[1] * axes.shape[0] // 2):
        axes[2 * (k // ncol), k % ncol].axis("off"), axes[2 * (k // ncol) + 1, k % ncol].axis("off")
    fig.suptitle("Training loss by family (first seed; faint: per step, bold: rolling mean)")
    fig.tight_layout()
    _save(fig, path)


def grad_norm(study: Study, comp: pd.DataFrame, path) -> None:
    """Gradient norm (before clipping, log scale) of each family's cells, the baseline dashed; and,
    when the grid has SCL cells with and without L2 normalisation, a panel comparing just those."""
    extra = []
    scl = study.of_family("scl")
    norms = {bool(param_value(study, c, "normalize")) for c in scl}
    if len(norms) == 2:
        extra = [("SCL: L2-normalised vs raw [CLS]", scl)]
    panels, nrow, ncol = _family_panels(study, extra)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    base = study.history(study.baseline)
    for i, (title, cells) in enumerate(panels):
        ax = axes[i // ncol, i % ncol]
        colors = {c: f"C{j % 10}" for j, c in enumerate(cells)}
        labels = _labels(study, cells, _sweep_keys(study, cells))
        if extra and i == 0:  # the L2 panel: cool colours for L2-normalised cells, warm ones for raw
            l2 = [c for c in cells if param_value(study, c, "normalize")]
            raw = [c for c in cells if c not in l2]
            colors = {**{c: L2_COLORS[k % len(L2_COLORS)] for k, c in enumerate(l2)},
                      **{c: RAW_COLORS[k % len(RAW_COLORS)] for k, c in enumerate(raw)}}
            labels = {c: f"{c} ({'L2' if c in l2 else 'raw'})" for c in cells}
        for j, c in enumerate(cells):
            _draw(ax, study.history(c), "grad_norm", labels[c], colors[c], "-" if j < 10 else "--")
        if study.baseline not in cells:
            _draw(ax, base, "grad_norm", study.baseline, "k", "--", faint=False)
        if any((study.history(c)["grad_norm"] > 0).any() for c in cells):
            ax.set_yscale("log")
        ax.set(title=title, xlabel="optimizer step", ylabel="gradient norm")
        ax.legend(frameon=False, fontsize="x-small", loc="upper right", ncol=1 + len(cells) // 8)
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol, k % ncol].axis("off")
    fig.suptitle("Gradient norm before clipping (first seed; bold: rolling mean)")
    fig.tight_layout()
    _save(fig, path)


def rdrop_cost(study: Study, comp: pd.DataFrame, path) -> None:
    """Bars for the baseline and each R-Drop cell: train time, step-time ratio, peak memory."""
    cells = study.ordered(study.of_family("rdrop"))
    if len(cells) < 2:
        return placeholder(path, "No cells of family rdrop in this grid.")
    s = cell_stats(study, cells, ["train_time_s", "peak_memory_mb"]).merge(
        ratio_to(study, cells, "step_time_s", study.baseline), on="cell")
    names = [c if c == study.baseline else
             f"{c}\n({ {1: 'one', 2: 'two'}.get(param_value(study, c, 'stages'), '?') }-stage)" for c in cells]
    fig, axes = plt.subplots(1, 3, figsize=(4 * 3, 3.6))
    for ax, (col, label) in zip(axes, [("train_time_s", "train time (s)"),
                                       ("step_time_s_ratio", f"step time / {study.baseline}'s"),
                                       ("peak_memory_mb", "peak memory (MB)")]):
        ax.bar(np.arange(len(cells)), s[f"{col}_mean"], yerr=s[f"{col}_std"].fillna(0), capsize=3,
               color=["0.6"] + [f"C{j}" for j in range(len(cells) - 1)])
        ax.set_xticks(np.arange(len(cells)), names, rotation=30, ha="right", fontsize="small")
        ax.set(ylabel=label, title=label)
        if col == "step_time_s_ratio":
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
    fig.suptitle("R-Drop cost, mean ± std over seeds (same machine only)")
    fig.tight_layout()
    _save(fig, path)


# name -> builder(study, comparisons, path); names are the output file stems (figures/<name>.png)
FIGURES = {"forest": forest, "loss_curves": loss_curves, "grad_norm": grad_norm, "rdrop_cost": rdrop_cost,
           "tsne_k_alpha": tsne_k_alpha, "multilayer_bars": multilayer_bars}
