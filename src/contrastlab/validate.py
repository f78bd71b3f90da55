"""Checks of config.yaml that a JSON schema cannot express, run when the DAG is built, so that a
bad value stops the workflow before any job with a message naming the key."""
from __future__ import annotations

from pathlib import Path

from .grid import Cell, expand_grid
from .layers import resolve_layer
from .model import EMBEDDED_MODEL, resolve_model_path


class ConfigError(ValueError):
    pass


def _num_layers(model_name: str) -> int | None:
    """Encoder depth of a local or embedded model; None for a hub id (not fetched at DAG build)."""
    path = resolve_model_path(model_name)
    if model_name != EMBEDDED_MODEL and not Path(path).is_dir():
        return None
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).num_hidden_layers


def check_config(config: dict) -> list[Cell]:
    """Validate what the schema cannot and return the expanded grid."""
    data = config.get("data", {})
    if data.get("source") == "files":
        if not data.get("files"):
            raise ConfigError("data.files must list at least a train file when data.source is 'files'")
        for split, path in data["files"].items():
            if not Path(path).is_file():
                raise ConfigError(f"data.files.{split}: no such file {path}")
    if data.get("source") == "hub" and not data.get("name"):
        raise ConfigError("data.name must name a Hugging Face dataset when data.source is 'hub'")
    try:
        cells = expand_grid(config)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    experiments = config["experiments"]
    if config.get("baseline", "baseline") not in experiments:
        raise ConfigError(f"baseline: experiment {config.get('baseline')!r} is not in experiments")
    for name, spec in experiments.items():
        target = (spec or {}).get("compare_to")
        if target is not None and target not in experiments:
            raise ConfigError(f"experiments.{name}.compare_to: no experiment named {target!r}")
    depth = {}
    for cell in cells:
        m = cell.config["model"]
        if m["name"] not in depth:
            depth[m["name"]] = _num_layers(m["name"])
        n = depth[m["name"]]
        if n is None:
            continue
        if m["trainable_layers"] > n:
            raise ConfigError(f"model.trainable_layers = {m['trainable_layers']} (cell {cell.name}) but "
                              f"{m['name']} has {n} encoder layers")
        for layer in config.get("probe", {}).get("layers", []):
            try:
                resolve_layer(layer, n)
            except ValueError as e:
                raise ConfigError(f"probe.layers: {e}") from e
    return cells
