"""`baseline`: cross-entropy on the head's logits over the final-layer [CLS]."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from . import Objective

DEPENDS: list[str] = []


@dataclass
class Params:
    label_smoothing: float = 0.0


class CrossEntropy(Objective):
    def __init__(self, params: Params):
        super().__init__()
        self.params = params

    def forward(self, model, batch):
        cls = model.encode(batch["input_ids"], batch["attention_mask"]).last_hidden_state[:, 0]
        ce = F.cross_entropy(model.head(cls), batch["labels"], label_smoothing=self.params.label_smoothing)
        return {"loss": ce, "ce": ce}


def build(params: Params, model) -> Objective:
    return CrossEntropy(params)
