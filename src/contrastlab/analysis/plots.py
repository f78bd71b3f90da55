"""Figures of one cell (t-SNE, training curves) and of the aggregate (t-SNE grid, bars, forest plot).

Matplotlib with the Agg backend (no display needed); every figure is written atomically as PNG.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from contrastlab.operations.io import atomic_path  # noqa: E402

DPI = 120


def tsne_2d(x: np.ndarray, seed: int, perplexity: float = 30.0, n_jobs: int = 2, pca_dims: int = 50) -> np.ndarray:
    """x [N, D] -> [N, 2] t-SNE map by openTSNE: seconds to a minute at 20k points, where
    scikit-learn's Barnes-Hut takes several minutes.

    As usual for t-SNE, x is first reduced to `pca_dims` principal components (seeded) when
    D is larger: the neighbour search then costs N^2 * 50 instead of N^2 * D. Neighbours are
    exact up to 50k points (a matrix product beats Annoy's index build there); gradients use
    Barnes-Hut below 10k points and FFT interpolation above (openTSNE's "auto").
    Below 10k points one thread is used: there openTSNE's per-iteration work is too small for
    threads to pay off, and on a busy machine their synchronisation made it 10x slower.
    Perplexity is capped at (N - 1) / 3 so that small inputs still work.
    """
    from openTSNE import TSNE  # imported here: only the plot stage needs it
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] > pca_dims and len(x) > pca_dims:
        x = PCA(pca_dims, random_state=seed).fit_transform(x)
    tsne = TSNE(perplexity=min(perplexity, (len(x) - 1) / 3), n_jobs=n_jobs if len(x) >= 10_000 else 1,
                random_state=seed, neighbors="exact" if len(x) <= 50_000 else "auto", negative_gradient_method="auto")
    return np.asarray(tsne.fit(x))


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _scatter(ax, xy: np.ndarray, y: np.ndarray, label_names: list[str]) -> None:
    colors = plt.get_cmap("tab10")
    s = max(1.0, min(12.0, 4000 / max(len(xy), 1)))  # smaller points when there are many
    for c, name in enumerate(label_names):
        m = y == c
        ax.scatter(xy[m, 0], xy[m, 1], s=s, alpha=0.6, lw=0, color=colors(c % 10), label=name)
    ax.set_xticks([]), ax.set_yticks([])


def plot_tsne(xy: np.ndarray, y: np.ndarray, label_names: list[str], path: str | Path, title: str = "") -> None:
    """xy [N, 2], y [N] integer labels indexing label_names -> scatter coloured by label."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    _scatter(ax, np.asarray(xy), np.asarray(y), label_names)
    ax.legend(markerscale=3, frameon=False, loc="best")
    ax.set_title(title)
    _save(fig, path)


def smooth(s: pd.Series) -> pd.Series:
    """Rolling mean over ~5% of the run (at least 1 step), centred: shows the trend under the noise."""
    return s.rolling(max(1, len(s) // 20), min_periods=1, center=True).mean()


def plot_curves(history: pd.DataFrame, epochs: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """history: one row per optimizer step with `step`, `grad_norm`, `loss` and `loss_<term>`;
    epochs: one row per validation with `step`, `train_loss`, `val_loss`, `val_accuracy` ->
    three panels: the loss terms, the gradient norm (log y), and validation loss and accuracy.
    Raw values are drawn faint, the rolling mean on top."""
    terms = ["loss"] + [c for c in history.columns if c.startswith("loss_")]
    fig, (ax_l, ax_g, ax_v) = plt.subplots(1, 3, figsize=(15, 4))
    for i, col in enumerate(terms):
        color = f"C{i}"
        ax_l.plot(history["step"], history[col], color=color, alpha=0.25, lw=0.8)
        ax_l.plot(history["step"], smooth(history[col]), color=color, lw=1.6, label=col)
    ax_l.set(xlabel="optimizer step", ylabel="loss", title="loss terms")
    ax_l.legend(frameon=False)
    ax_g.plot(history["step"], history["grad_norm"], color="C0", alpha=0.25, lw=0.8)
    ax_g.plot(history["step"], smooth(history["grad_norm"]), color="C0", lw=1.6)
    ax_g.set(xlabel="optimizer step", ylabel="gradient norm (before clipping)", title="gradient norm")
    if (history["grad_norm"] > 0).any():
        ax_g.set_yscale("log")
    ax_v.plot(epochs["step"], epochs["val_loss"], "o-", color="C3", label="validation loss")
    ax_v.plot(epochs["step"], epochs["train_loss"], "o--", color="C7", label="train loss (since the last validation)")
    ax_v.set(xlabel="optimizer step", ylabel="loss", title="validation")
    acc = ax_v.twinx()
    acc.plot(epochs["step"], epochs["val_accuracy"], "s-", color="C2", label="validation accuracy")
    acc.set_ylabel("accuracy")
    handles = ax_v.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax_v.legend(handles, [h.get_label() for h in handles], frameon=False, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_tsne_grid(panels: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], label_names: list[str],
                   path: str | Path, title: str = "") -> None:
    """panels: {(row_label, col_label): (xy [N, 2], y [N])} -> one t-SNE per cell, rows x columns
    in first-seen order (e.g. rows k, columns alpha); missing cells stay empty."""
    rows = list(dict.fromkeys(r for r, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 3.2 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            if (r, c) in panels:
                xy, y = panels[(r, c)]
                _scatter(ax, np.asarray(xy), np.asarray(y), label_names)
            else:
                ax.axis("off")
            if i == 0:
                ax.set_title(str(c))
            if j == 0:
                ax.set_ylabel(str(r))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), markerscale=3, frameon=False)
    fig.suptitle(title)
    _save(fig, path)


def plot_bars(df: pd.DataFrame, x: str, y: str, yerr: str | None, hue: str | None, path: str | Path,
              title: str = "") -> None:
    """Grouped bars: df[x] on the axis, one bar per df[hue] value (if hue), df[yerr] as error bars."""
    groups = list(dict.fromkeys(df[x]))
    hues = list(dict.fromkeys(df[hue])) if hue else [None]
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(1, len(hues)) ** 0.5), 4))
    for k, h in enumerate(hues):
        sub = (df[df[hue] == h] if hue else df).set_index(x).reindex(groups)
        pos = np.arange(len(groups)) + (k - (len(hues) - 1) / 2) * width
        ax.bar(pos, sub[y], width, yerr=sub[yerr] if yerr else None, capsize=3, label=str(h) if hue else None)
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups], rotation=30, ha="right")
    ax.set(ylabel=y, title=title)
    lo = np.nanmin(df[y] - (df[yerr] if yerr else 0))
    hi = np.nanmax(df[y] + (df[yerr] if yerr else 0))
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo > 0:  # zoom onto the differences
        pad = 0.15 * (hi - lo)
        ax.set_ylim(max(0.0, lo - pad), hi + pad)
    if hue:
        ax.legend(frameon=False, title=hue)
    _save(fig, path)


VERDICT_COLORS = {"better": "C2", "worse": "C3", "equivalent": "C0", "provisional": "C1"}
DEGENERATE = ("collapsed", "reference collapsed")


def plot_forest(df: pd.DataFrame, path: str | Path, title: str = "", xlabel: str = "difference to the reference",
                margin: float | None = None) -> dict:
    """df with columns cell, diff, lo, hi, verdict (aggregate.compare's words) and optionally mdd
    -> one row per cell: the difference with its 95% interval, coloured by its word (green better,
    red worse, blue equivalent, orange provisional, grey undecided). The x-axis spans only the
    comparisons that mean something (and ±margin, ±each row's MDD): a collapsed or reference-
    collapsed row is a mark at the axis edge on its side, labelled with its Δ, so that a Δ of −0.3
    does not squash the others. Shaded: the equivalence margin ±margin, and per row ±its MDD.
    Returns {"xlim": (lo, hi), "edge": {cell: x of its mark}}."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(df) + 1.4))
    pos = np.arange(len(df))[::-1]
    real = ~df["verdict"].isin(DEGENERATE).to_numpy()
    mdd = df["mdd"].to_numpy(float) if "mdd" in df else np.full(len(df), np.nan)
    span = [0.0] + ([margin, -margin] if margin else [])
    span += list(df.loc[real, "lo"]) + list(df.loc[real, "hi"]) + [x for m in mdd[real] if np.isfinite(m) for x in (m, -m)]
    lo, hi = float(np.nanmin(span)), float(np.nanmax(span))
    pad = 0.08 * (hi - lo) if hi > lo else 0.01
    lo, hi = lo - pad, hi + pad
    if margin:
        ax.axvspan(-margin, margin, color="C0", alpha=0.08, lw=0, label=f"equivalence margin ±{margin:g}")
    edge = {}
    for p, (_, r), m, ok in zip(pos, df.iterrows(), mdd, real):
        if not ok:  # a degenerate comparison: a mark at the edge, its Δ in words
            x = lo if r["diff"] < 0 else hi
            edge[r["cell"]] = x
            ax.plot(x, p, "<" if r["diff"] < 0 else ">", color="k", ms=8, clip_on=False)
            ax.annotate(f"{r['verdict']}, Δ {r['diff']:+.3f}", (x, p), xytext=(8 if x == lo else -8, 0),
                        textcoords="offset points", ha="left" if x == lo else "right", va="center", fontsize="small")
            continue
        if np.isfinite(m):
            ax.barh(p, 2 * m, left=-m, height=0.5, color="0.88", lw=0, zorder=0)
        color = VERDICT_COLORS.get(r["verdict"], "0.55")
        ax.plot([r["lo"], r["hi"]], [p, p], color=color, lw=2)
        ax.plot(r["diff"], p, "o", color=color, ms=6)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.7, len(df) - 0.3)
    ax.set_yticks(pos, [f"{c} ({v})" if v in DEGENERATE else f"{c} ({v})" if v in VERDICT_COLORS else str(c)
                        for c, v in zip(df["cell"], df["verdict"])])
    ax.set(xlabel=xlabel, title=title)
    if margin:
        ax.legend(frameon=False, fontsize="small", loc="lower right")
    _save(fig, path)
    return {"xlim": (lo, hi), "edge": edge}


def plot_seed_strips(panels: list[tuple[str, dict[str, np.ndarray]]], path: str | Path, title: str = "") -> None:
    """panels: [(title, {cell: per-seed scores})] -> one strip plot per panel: every seed a dot
    (jittered sideways), the mean a bar; cells side by side (Reimers & Gurevych 2017: compare the
    distributions, not only the means)."""
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False)
    rng = np.random.default_rng(0)
    for k, (name, cells) in enumerate(panels):
        ax = axes[k // ncol, k % ncol]
        for i, (cell, scores) in enumerate(cells.items()):
            scores = np.asarray(scores, float)
            ax.plot(i + rng.uniform(-0.12, 0.12, len(scores)), scores, "o", color=f"C{i % 10}", ms=5, alpha=0.8)
            ax.plot([i - 0.25, i + 0.25], [scores.mean()] * 2, color="k", lw=1.5)
        ax.set_xticks(range(len(cells)), list(cells), rotation=30, ha="right", fontsize="small")
        ax.set(title=name, ylabel="test accuracy")
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol, k % ncol].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
