"""Figures are real PNGs; t-SNE keeps separable classes apart."""
import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from contrastlab.plots import (plot_bars, plot_curves, plot_forest, plot_overlaid_curves, plot_tsne,
                               plot_tsne_grid, tsne_2d)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert not list(path.parent.glob(f".{path.name}.*.tmp"))  # the atomic temp file is gone


def history(n=60, seed=0):
    rng = np.random.default_rng(seed)
    ce = np.exp(-np.arange(n) / 20) + 0.05 * rng.random(n)
    supcon = 2 * np.exp(-np.arange(n) / 30) + 0.05 * rng.random(n)
    return pd.DataFrame({"step": np.arange(1, n + 1), "lr": np.linspace(2e-5, 0, n),
                         "grad_norm": 10 ** rng.normal(0, 0.3, n), "loss": ce + 0.2 * supcon,
                         "loss_ce": ce, "loss_supcon": supcon})


def test_tsne_keeps_separable_blobs_apart_and_plots(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    x = rng.normal(size=(300, 20)) + 6 * rng.normal(size=(3, 20))[y]
    xy = tsne_2d(x, seed=0, perplexity=30)
    assert xy.shape == (300, 2)
    assert cross_val_score(KNeighborsClassifier(5), xy, y, cv=5).mean() > 0.95
    plot_tsne(xy, y, ["a", "b", "c"], tmp_path / "tsne.png", "blobs")
    assert_png(tmp_path / "tsne.png")
    plot_tsne_grid({(f"k={k}", f"alpha={a}"): (xy, y) for k in (30, 60) for a in (0.2, 0.5)},
                   ["a", "b", "c"], tmp_path / "grid.png")
    assert_png(tmp_path / "grid.png")


def test_curves_and_aggregate_figures_are_valid_pngs(tmp_path):
    plot_curves(history(), tmp_path / "curves.png", "cell")
    assert_png(tmp_path / "curves.png")
    plot_overlaid_curves({"baseline": history(seed=1), "scl": history(seed=2)}, "grad_norm", tmp_path / "over.png")
    assert_png(tmp_path / "over.png")
    bars = pd.DataFrame({"layers": ["0-3", "4-7", "0-3", "4-7"], "level": ["token", "token", "sentence", "sentence"],
                         "acc": [0.90, 0.91, 0.89, 0.92], "std": [0.01, 0.005, 0.01, 0.02]})
    plot_bars(bars, "layers", "acc", "std", "level", tmp_path / "bars.png")
    assert_png(tmp_path / "bars.png")
    forest = pd.DataFrame({"cell": ["scl", "rdrop"], "diff": [0.01, -0.002], "lo": [0.004, -0.01],
                           "hi": [0.016, 0.006], "significant": [True, False]})
    plot_forest(forest, tmp_path / "forest.png")
    assert_png(tmp_path / "forest.png")
