"""`simcse`: unsupervised SimCSE over two dropout views of the final [CLS] (see the package docstring)."""
from __future__ import annotations

import torch

from contrastlab.objectives.contrastive import ContrastiveObjective
from contrastlab.objectives.objective import cls_of
from contrastlab.objectives.views import dropout_views
from contrastlab.objectives.families.simcse import Params


class SimCSE(ContrastiveObjective):
    def views(self, model, batch):
        cls = cls_of(model, batch)
        if self.params.stages == 1:
            return cls, [(dropout_views(cls, model.dropout, n=2), None)]
        return cls, [(torch.stack([cls, cls_of(model, batch)], 1), None)]


def build(params: Params, model) -> SimCSE:
    return SimCSE(params, model.hidden_size)
