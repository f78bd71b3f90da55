"""What a loss family's objective is: a module that turns micro-batches into named loss terms.

    terms = objective(model, batches, n_total)

`batches`: one micro-batch, or (for an objective that `couples_batch`, under the effective
contrast set) every micro-batch of the optimizer step. Each holds "input_ids" and
"attention_mask" [B, T] and "labels" [B]. `n_total`: the examples of the whole optimizer step.

The returned scalars are this call's *share* of the step's terms: summed over the calls of one
step they equal the terms computed on the step's whole effective batch, whatever the split into
micro-batches (a mean over samples is a sum over this call's samples / n_total; a sum-reduced term
is this call's plain sum). The training loop therefore just adds the calls up, for the gradient
and for the logged values. "loss" is what is backpropagated; the others are logged as
`loss_<term>`. `weights` says how much of "loss" each term is (for the diagnostics of a cell
whose auxiliary term swamped its cross-entropy) and `ce_term` names the classification term.
Parameters the objective owns (a projection head) train at the head's learning rate.
"""
from __future__ import annotations

import torch
from torch import nn


class Objective(nn.Module):
    couples_batch = False  # True: a sample's loss depends on the others of its contrast set
    ce_term = "ce"  # the classification term, as logged

    @property
    def classification_terms(self) -> set[str]:
        """The terms of `weights` that are the classification loss (R-Drop has two)."""
        return {self.ce_term}

    def forward(self, model, batches: list[dict], n_total: int) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    @property
    def weights(self) -> dict[str, float]:
        """term -> its coefficient in "loss"."""
        return {self.ce_term: 1.0}


def labels_of(batches: list[dict]) -> torch.Tensor:
    return torch.cat([b["labels"] for b in batches])


def cls_of(model, batch: dict) -> torch.Tensor:
    """The final-layer [CLS] of one micro-batch [B, D]."""
    return model.encode(batch["input_ids"], batch["attention_mask"]).last_hidden_state[:, 0]
