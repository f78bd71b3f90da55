"""`scl`'s report: one view against multi-view, normalised or raw, additive or Gunel's weighting;
and the gradient norm of L2-normalised against raw [CLS] views."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from contrastlab.analysis.aggregate.collect import Study  # noqa: E402
from contrastlab.analysis.aggregate.figures import placeholder, save_figure  # noqa: E402
from contrastlab.analysis.aggregate.tables import TEST_METRICS, comparison_table, param_value  # noqa: E402
from contrastlab.analysis.plots import smooth  # noqa: E402

L2_COLORS, RAW_COLORS = ["C0", "C2", "C9", "C4"], ["C3", "C1", "C6"]  # cool: normalised, warm: raw


def scl_views(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    comparison_table(study, comp, cells, TEST_METRICS, ["views", "layer", "normalize", "weighting", "alpha", "tau"],
                     "Supervised contrastive loss: one view vs multi-view",
                     "views: one = the final [CLS]; multi = final [CLS], the [CLS] of layer `layer` and "
                     "a dropout view. normalize: L2-normalised views. weighting: add = CE + α·SCL, "
                     "convex = (1 − α)·CE + α·SCL (Gunel et al.).").save(paths)


def scl_grad_norm(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    """Gradient norm before clipping (first seed) of the SCL cells with L2-normalised views against
    those without, the baseline dashed: the reference study's gradient explosion without it."""
    l2 = [c for c in cells if param_value(study, c, "normalize")]
    raw = [c for c in cells if c not in l2]
    if not l2 or not raw:
        return placeholder(paths["png"], "No SCL cells both with and without L2 normalisation in this grid.")
    colors = {**{c: L2_COLORS[k % len(L2_COLORS)] for k, c in enumerate(l2)},
              **{c: RAW_COLORS[k % len(RAW_COLORS)] for k, c in enumerate(raw)}}
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for c in l2 + raw:
        h = study.history(c)
        ax.plot(h["step"], h["grad_norm"], color=colors[c], alpha=0.15, lw=0.7)
        ax.plot(h["step"], smooth(h["grad_norm"]), color=colors[c], lw=1.5,
                label=f"{c} ({'L2' if c in l2 else 'raw'})")
    base = study.history(study.baseline)
    ax.plot(base["step"], smooth(base["grad_norm"]), color="k", lw=1.5, ls="--", label=study.baseline)
    if any((study.history(c)["grad_norm"] > 0).any() for c in cells):
        ax.set_yscale("log")
    ax.set(title="SCL: L2-normalised vs raw [CLS]", xlabel="optimizer step", ylabel="gradient norm")
    ax.legend(frameon=False, fontsize="x-small", loc="upper right")
    fig.tight_layout()
    save_figure(fig, paths["png"])
