"""Figures are real PNGs; t-SNE keeps separable classes apart."""
import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from contrastlab.analysis.plots import plot_bars, plot_curves, plot_forest, plot_tsne, plot_tsne_grid, tsne_2d

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


def epochs(n=3, steps=60):
    step = np.linspace(steps / n, steps, n).astype(int)
    return pd.DataFrame({"step": step, "epoch": np.arange(1, n + 1), "train_loss": np.linspace(0.7, 0.3, n),
                         "val_loss": np.linspace(0.65, 0.4, n), "val_accuracy": np.linspace(0.6, 0.8, n)})


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


def test_curves_have_loss_gradient_and_validation_panels_and_are_a_valid_png(tmp_path, monkeypatch):
    import matplotlib.figure

    drawn = []
    save = matplotlib.figure.Figure.savefig

    def record(fig, *args, **kwargs):
        drawn.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    plot_curves(history(), epochs(), tmp_path / "curves.png", "cell")
    assert_png(tmp_path / "curves.png")
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["loss terms", "gradient norm", "validation"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["loss", "loss_ce", "loss_supcon"]
    val, acc = fig.axes[2], fig.axes[3]  # the validation panel and its accuracy twin
    assert list(val.get_lines()[0].get_ydata()) == list(epochs()["val_loss"])
    assert list(acc.get_lines()[0].get_ydata()) == list(epochs()["val_accuracy"])
    assert fig.axes[1].get_yscale() == "log"


def test_bars_and_forest_are_valid_pngs(tmp_path, monkeypatch):
    bars = pd.DataFrame({"layers": ["0-3", "4-7", "0-3", "4-7"], "level": ["token", "token", "sentence", "sentence"],
                         "acc": [0.90, 0.91, 0.89, 0.92], "std": [0.01, 0.005, 0.01, 0.02]})
    plot_bars(bars, "layers", "acc", "std", "level", tmp_path / "bars.png")
    assert_png(tmp_path / "bars.png")
    forest = pd.DataFrame({"cell": ["scl", "rdrop", "token", "lora", "tok_lora"], "diff": [0.01, -0.02, 0.002, -0.3, 0.25],
                           "lo": [0.004, -0.03, -0.006, -0.32, 0.2], "hi": [0.016, -0.01, 0.01, -0.28, 0.3],
                           "mdd": [0.008, 0.012, 0.011, 0.02, 0.02],
                           "verdict": ["better", "worse", "undecided", "collapsed", "reference collapsed"]})
    import matplotlib.axes
    labels = []
    set_yticks = matplotlib.axes.Axes.set_yticks
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks",
                        lambda ax, ticks, names=None, **kw: (labels.extend(names or []), set_yticks(ax, ticks, names, **kw)))
    colors = {}
    plot = matplotlib.axes.Axes.plot

    def record(ax, *args, **kw):
        if len(args) >= 2 and np.ndim(args[0]) == 0:  # the point estimate of a row
            colors[float(args[1])] = (kw.get("color"), args[2] if len(args) > 2 else None)
        return plot(ax, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    drawn = plot_forest(forest, tmp_path / "forest.png", title="Δ", margin=0.01)
    assert_png(tmp_path / "forest.png")
    assert labels == ["scl (better)", "rdrop (worse)", "token", "lora (collapsed)", "tok_lora (reference collapsed)"]
    # rows from the top: y = 4 (scl) .. 0 (tok_lora)
    assert colors[4][0] == "C2" and colors[3][0] == "C3" and colors[2][0] == "0.55"
    lo, hi = drawn["xlim"]
    # issue 23: the axis spans the real comparisons (their intervals, MDDs and the margin), not the collapse
    assert -0.04 < lo < -0.03 and 0.016 < hi < 0.03
    assert drawn["edge"] == {"lora": lo, "tok_lora": hi} and colors[1] == ("k", "<") and colors[0] == ("k", ">")
