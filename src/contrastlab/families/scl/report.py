"""`scl`'s report: one view against multi-view, normalised or raw, additive or Gunel's weighting."""
from __future__ import annotations

import pandas as pd

from ...aggregate.collect import Study
from ...aggregate.tables import TEST_METRICS, Table, comparison_table


def scl_views(study: Study, comp: pd.DataFrame) -> Table:
    cells = study.of_family("scl")
    return comparison_table(study, comp, cells, TEST_METRICS, ["views", "layer", "normalize", "weighting", "alpha", "tau"],
                            "Supervised contrastive loss: one view vs multi-view",
                            "views: one = the final [CLS]; multi = final [CLS], the [CLS] of layer `layer` and "
                            "a dropout view. normalize: L2-normalised views. weighting: add = CE + α·SCL, "
                            "convex = (1 − α)·CE + α·SCL (Gunel et al.).")
