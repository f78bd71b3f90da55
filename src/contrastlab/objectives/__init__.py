"""Loss families: each turns a micro-batch into named loss terms.

A family lives in its own module `contrastlab.objectives.<family>` that defines

    Params        a dataclass of the family's hyper-parameters (config keys of its recipe)
    build(params: Params, model: Classifier) -> Objective

An `Objective` is an `nn.Module` whose `forward(model, batch)` returns a dict of scalar
tensors: "loss" (what is backpropagated) and one entry per term ("ce", "supcon", ...), which
the training loop logs as `loss_<term>`. Any parameters the objective owns (a projection
head) train with the head's learning rate and are saved with the weights.

`batch` holds "input_ids" and "attention_mask" [B, T] and "labels" [B]. An objective whose
loss couples the samples of a batch (`couples_batch`) also has `forward_group(model, batches)`.
"""
from __future__ import annotations

import importlib
from dataclasses import fields
from pathlib import Path

from torch import nn

# family name -> module; the module files (and the shared loss/view modules they import) are
# hashed into each cell's params so that editing a family's code reruns exactly its cells.
FAMILIES = {
    "baseline": "baseline",
    "rdrop": "rdrop",
    "scl": "scl",
    "token": "token",
    "cluster": "cluster",
    "multilayer": "multilayer",
    "focal": "focal",
    "simcse": "simcse",
}


class Objective(nn.Module):
    # True when a sample's loss depends on the other samples of its batch (a contrastive term).
    # Under train.contrast_set "effective" the training loop then calls `forward_group` once with
    # every micro-batch of the optimizer step, so the contrast set is the effective batch.
    couples_batch = False

    def forward(self, model, batch) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def forward_group(self, model, batches: list[dict]) -> dict:  # pragma: no cover - interface
        """The terms over the union of `batches`, as if they were one batch."""
        raise NotImplementedError


def _module(family: str):
    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}' (known: {', '.join(sorted(FAMILIES))})")
    return importlib.import_module(f"{__name__}.{FAMILIES[family]}")


def parse_params(family: str, params: dict | None, where: str = "loss"):
    """The family's Params from a config mapping, naming `<where>.<key>` for an unknown key."""
    cls = _module(family).Params
    params = dict(params or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown key {where}.{unknown[0]} for family '{family}' "
                         f"(known: {', '.join(sorted(known)) or 'none'})")
    return cls(**params)


def build_objective(family: str, params: dict | None, model) -> Objective:
    return _module(family).build(parse_params(family, params), model)


def source_files(family: str) -> list[Path]:
    """The source files whose content defines the family's loss (its module and what it lists in
    `DEPENDS`, module names relative to the contrastlab package)."""
    mod = _module(family)
    pkg = Path(__file__).resolve().parent.parent
    deps = [pkg / f"{name.replace('.', '/')}.py" for name in getattr(mod, "DEPENDS", [])]
    return [Path(mod.__file__).resolve(), *deps]
