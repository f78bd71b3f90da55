"""`multilayer`: CE + alpha * mean over the layers of a layer set of a per-layer SupCon.

Layers follow contrastlab.layers (0-based encoder layers, negative from the end; the embedding
output is not a layer): layer l is hidden_states[l + 1] and attentions[l]. The default
[-4, -3, -2, -1] is the reference's {8, 9, 10, 11} of a 12-layer DeBERTa.
level "sentence": per layer, its [CLS] and a dropout view of it (the head's dropout) -> [B, 2, D].
level "token": per layer, its k tokens with the highest [CLS] attention of that same layer
(all rows computed in the one forward pass) -> [B, k, D] with padding views masked.
A layer below the trainable ones adds a term with no trainable parameter under it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..views import encode, layer_set_views, token_mask
from .composite import ContrastiveObjective, ContrastParams
from .scl import check_layers

DEPENDS = ["losses", "views", "attention", "objectives.composite", "objectives.scl"]


@dataclass
class Params(ContrastParams):
    layers: list[int] = field(default_factory=lambda: [-4, -3, -2, -1])
    level: str = "sentence"  # "sentence" or "token"
    k: int = 50

    def __post_init__(self):
        super().__post_init__()
        if self.level not in ("sentence", "token"):
            raise ValueError(f"loss.level must be 'sentence' or 'token', got {self.level!r}")
        if not self.layers:
            raise ValueError("loss.layers must name at least one layer")
        if self.k < 1:
            raise ValueError(f"loss.k must be >= 1, got {self.k}")


class LayerSetViews(ContrastiveObjective):
    def views(self, model, batch):
        p = self.params
        token = p.level == "token"
        out, rows = encode(model, batch, hidden_states=True, attention_layers=p.layers if token else ())
        groups = layer_set_views(out.hidden_states, p.layers, p.level, dropout=model.dropout, rows=rows,
                                 mask=token_mask(batch) if token else None, k=p.k)
        return out.last_hidden_state[:, 0], groups


def build(params: Params, model) -> LayerSetViews:
    check_layers(params.layers, model)
    return LayerSetViews(params, model.hidden_size)
