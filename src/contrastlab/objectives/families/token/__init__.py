"""`token`: CE + alpha * SupCon over the k tokens each sample's [CLS] attends to most.

The views are the hidden states (output of encoder layer `layer`) of the k tokens with the
highest [CLS] attention in that same layer (mean over heads; [CLS], [SEP] and padding excluded),
computed during the ordinary forward pass (contrastlab.objectives.attention). With fewer than k real tokens
the views are the real tokens only; the other slots are padding views no loss counts.
"""
from __future__ import annotations


from pydantic import Field

from contrastlab.plan.config import ContrastParams
from contrastlab.plan.contract import family_output

OUTPUTS = [family_output(__name__, "token_k_alpha", "table", "Token-level contrast: k x alpha"),
           family_output(__name__, "tsne_k_alpha", "figure", "Token-level contrast: t-SNE of [CLS], k x alpha")]


class Params(ContrastParams):
    k: int = Field(30, ge=1, description="tokens per sample (its views)")

    def views_label(self) -> str:
        return f"top-{self.k} tokens"
    layer: int = Field(-1, description="encoder layer of the tokens and of the [CLS] attention (-1 the last)")

    def contrast_layers(self) -> list[int]:
        return [self.layer]
