"""`multilayer`'s report: accuracy and probes by layer set and level."""
from __future__ import annotations

import pandas as pd

from contrastlab.analysis.aggregate.collect import Study
from contrastlab.analysis.aggregate.tables import cell_stats, comparison_table, fmt_param, param_value
from contrastlab.analysis.plots import plot_bars


def multilayer(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    probes = ["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi"]
    comparison_table(study, comp, cells, ["accuracy"], ["layers", "level", "k", "alpha"],
                            "Multi-layer contrast: layer sets x level",
                            "layers: the encoder layers whose SupCon terms are averaged (hidden-state index, "
                            "negative = from the top); level: token (top-k tokens of the layer) or sentence "
                            "([CLS] of the layer and its dropout view). Probes of the final [CLS] on the right.",
                            extra=cell_stats(study, study.ordered(cells), probes).drop(columns=["family", "seeds"]),
                            extra_metrics=probes).save(paths)


def multilayer_bars(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    s = cell_stats(study, cells, ["accuracy"])
    s["layers"] = [fmt_param(param_value(study, c, "layers")) for c in cells]
    s["level"] = [fmt_param(param_value(study, c, "level")) for c in cells]
    s = s.rename(columns={"accuracy_mean": "test accuracy"})
    b = cell_stats(study, [study.baseline], ["accuracy"]).iloc[0]
    plot_bars(s, "layers", "test accuracy", "accuracy_std", "level", paths["png"],
              title=f"Multi-layer contrast (bars: mean ± std over seeds); "
                    f"{study.baseline}: {b['accuracy_mean']:.4f}")
