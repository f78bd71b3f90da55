"""`scl`: CE + alpha * SupCon over [CLS] views (Gunel et al.: weighting "convex", alpha 0.9, tau 0.3).

views "one": the final [CLS]  ->  [B, 1, D].
views "multi": the final [CLS], the [CLS] of encoder layer `layer` (contrastlab.objectives.layers: 0-based
encoder layers, -1 the last) and a dropout view of the final [CLS] (the head's dropout, the
one-stage R-Drop view)  ->  [B, 3, D].
`normalize: false` drops the L2 normalisation (the reference's unstable first version).
`reduction: sum` is Gunel et al.'s equation as printed (the SCL term summed over the batch's
anchors while CE is a mean); the default "mean" weighs both alike.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contrastlab.plan.config import ContrastParams
from contrastlab.plan.contract import family_output

OUTPUTS = [family_output(__name__, "scl_views", "table", "Supervised contrastive loss: one view vs multi-view"),
           family_output(__name__, "scl_grad_norm", "figure", "SCL: gradient norm, L2-normalised vs raw views")]


class Params(ContrastParams):
    views: Literal["one", "multi"] = Field("one", description="one: the final [CLS]; multi: + layer `layer`'s [CLS] + a dropout view")
    layer: int = Field(-4, description="the intermediate layer of the multi-view (0-based encoder layer; -1 the last)")

    def contrast_layers(self) -> list[int]:
        return [-1, self.layer] if self.views == "multi" else [-1]

    def unread(self) -> dict[str, str]:
        return super().unread() | ({"layer": "loss.views: one reads no intermediate layer"} if self.views == "one" else {})

    def views_label(self) -> str:
        return f"[CLS] of layers -1,{self.layer} + a dropout view" if self.views == "multi" else ""

    def named_layers(self) -> list[int]:
        return [-1, self.layer] if self.views == "multi" or "layer" in self.model_fields_set else [-1]
