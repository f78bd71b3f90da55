"""`rdrop`'s report: accuracy against cost of one- vs two-stage R-Drop."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from contrastlab.analysis.aggregate.collect import Study  # noqa: E402
from contrastlab.analysis.aggregate.figures import save_figure  # noqa: E402
from contrastlab.analysis.aggregate.tables import cell_stats, comparison_table, param_value, ratio_to  # noqa: E402


def rdrop(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    everyone = study.ordered(cells)
    cost = ratio_to(study, everyone, "step_time_s", study.baseline).rename(
        columns={"step_time_s_ratio_mean": "step_time_ratio_mean", "step_time_s_ratio_std": "step_time_ratio_std"})
    mem = ratio_to(study, everyone, "peak_memory_mb", study.baseline).rename(
        columns={"peak_memory_mb_ratio_mean": "memory_ratio_mean", "peak_memory_mb_ratio_std": "memory_ratio_std"})
    extra = cell_stats(study, everyone, ["step_time_s", "peak_memory_mb"]).drop(
        columns=["family", "seeds"]).merge(cost, on="cell").merge(mem, on="cell")
    t = comparison_table(study, comp, cells, ["accuracy"], ["stages", "alpha"],
                         "R-Drop: one- vs two-stage, accuracy and cost",
                         f"Cost: device-s (above) and median optimizer-step time (s); step-time ratio = a cell's "
                         f"median step time / the {study.baseline}'s (same seed), and memory ratio likewise: "
                         f"comparable only between runs on the same machine (and device). Peak memory: peak "
                         f"allocated by torch on a GPU, the process's max RSS on a CPU.",
                         extra=extra, extra_metrics=["step_time_s", "step_time_ratio",
                                                     "peak_memory_mb", "memory_ratio"])
    if "stages" in t.shown:
        t.shown["stages"] = [{"1": "one-stage", "2": "two-stage"}.get(s, s) for s in t.shown["stages"]]
    t.save(paths)


def rdrop_cost(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    """Bars for the baseline and each R-Drop cell: train time, step-time ratio, peak memory."""
    cells = study.ordered(cells)
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
    save_figure(fig, paths["png"])
