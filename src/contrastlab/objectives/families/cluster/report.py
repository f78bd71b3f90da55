"""`cluster`'s report: accuracy and probes by number of clusters."""
from __future__ import annotations

import pandas as pd

from contrastlab.analysis.aggregate.collect import Study
from contrastlab.analysis.aggregate.tables import cell_stats, comparison_table


def cluster(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    comparison_table(study, comp, cells, ["accuracy"], ["n_clusters", "k", "alpha"],
                            "Clustered token views: number of clusters",
                            "The k top-attended tokens of each sample are grouped by k-means into n_clusters "
                            "clusters whose means are the views. Probes of the final [CLS] on the right.",
                            extra_metrics=["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi"],
                            extra=cell_stats(study, study.ordered(cells),
                                             ["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi"]).drop(
                                columns=["family", "seeds"])).save(paths)
