"""`multilayer`: CE + alpha * mean over the layers of a layer set of a per-layer SupCon.

Layers follow contrastlab.objectives.layers (0-based encoder layers, negative from the end; the embedding
output is not a layer): layer l is hidden_states[l + 1] and attentions[l]. The default
[-4, -3, -2, -1] is the reference's {8, 9, 10, 11} of a 12-layer DeBERTa.
level "sentence": per layer, its [CLS] and a dropout view of it (the head's dropout) -> [B, 2, D].
level "token": per layer, its k tokens with the highest [CLS] attention of that same layer
(all rows computed in the one forward pass) -> [B, k, D] with padding views masked.
Every layer of the set must train (or lie above a trainable one): a term on a frozen layer is a
constant with no gradient, and the DAG build stops such a cell.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contrastlab.plan.config import ContrastParams
from contrastlab.plan.contract import family_output

OUTPUTS = [family_output(__name__, "multilayer", "table", "Multi-layer contrast: layer sets x level"),
           family_output(__name__, "multilayer_bars", "figure", "Multi-layer contrast: accuracy by layer set and level")]


class Params(ContrastParams):
    layers: list[int] = Field([-4, -3, -2, -1], min_length=1, description="the layer set (0-based encoder layers; -1 the last)")
    level: Literal["sentence", "token"] = Field("sentence", description="sentence: each layer's [CLS] + dropout view; token: its top-k tokens")
    k: int = Field(50, ge=1, description="tokens per sample and layer (level token)")

    def contrast_layers(self) -> list[int]:
        return list(self.layers)

    def unread(self) -> dict[str, str]:
        return super().unread() | ({"k": "loss.level: sentence takes no tokens"} if self.level == "sentence" else {})

    def views_label(self) -> str:
        views = "[CLS] + a dropout view" if self.level == "sentence" else f"top-{self.k} tokens"
        return f"{views} of layers {','.join(map(str, self.layers))} (mean over layers)"
