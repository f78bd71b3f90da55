"""The resolved configuration of one cell: everything `train` and `embed` need, nothing else.

The Snakefile builds it from config.yaml (defaults + the family recipe + sweep values + seed),
passes it as a rule param (so a change reruns the cell) and `train` saves it beside the results.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import hashlib
import json

from .config import ModelConfig, OptimConfig, from_dict
from .objectives import parse_params


@dataclass
class CellConfig:
    cell: str  # e.g. "token_k8_alpha0.2": the recipe name and its sweep values
    family: str  # baseline, rdrop, scl, token, cluster, multilayer, focal, simcse
    seed: int = 1
    loss: dict = field(default_factory=dict)  # the family's Params, validated by the family
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    device: str = "auto"  # "auto" (a free GPU if any, else CPU), "cpu", "cuda", "cuda:1"
    eval_batch_size: int = 64
    log_every: int = 10  # optimizer steps between progress lines in the log

    @classmethod
    def from_dict(cls, d: dict) -> "CellConfig":
        cfg = from_dict(cls, d, "cell")
        cfg.model = ModelConfig.from_dict(cfg.model) if isinstance(cfg.model, dict) else cfg.model
        cfg.train = from_dict(OptimConfig, cfg.train, "train") if isinstance(cfg.train, dict) else cfg.train
        parse_params(cfg.family, cfg.loss, where=f"{cfg.cell}.loss")  # fail early on a bad key
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Hash of what determines the result (not the device or logging): guards checkpoint reuse."""
        d = self.to_dict()
        for key in ("device", "log_every", "eval_batch_size"):
            d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
