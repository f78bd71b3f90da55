"""`apply_values(cfg, values)`: a cell with the values its tuning selected (contrastlab.plan.tuning).

Apart from contrastlab.plan.tuning so that a training job imports only this (and its code hash does
not change when the planning code does).
"""
from __future__ import annotations

from contrastlab.objectives import families
from contrastlab.plan.config import CellConfig, validate


def apply_values(cfg: CellConfig, values: dict, label: str = "") -> CellConfig:
    """`cfg` with `values` set ({key path of a tuning space: value}), validated as a cell is;
    a mapping that is unset or off on the way (model.lora: null) is created."""
    d = cfg.model_dump()
    for key, value in values.items():
        *path, name = key.split(".")
        target = d
        for part in path:
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
        target[name] = value
    label = label or f"cell {cfg.cell}"
    loss = families.parse_params(cfg.family, d.pop("loss"), label, ()).model_dump()
    return validate(CellConfig, {**d, "loss": loss}, label)
