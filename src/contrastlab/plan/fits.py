"""`check_fits`: one cell's config against its model's shape (layers, positions), the one check
that needs the model's own config. The DAG build runs it from the config.json in the local cache
(contrastlab.plan.validate); the job runs it again from the config it loads (contrastlab.training.jobmodel), for
a hub model the DAG build could not see. Torch-free.
"""
from __future__ import annotations

from contrastlab.plan.config import ConfigError, LossParams
from contrastlab.plan.hfconfig import ModelInfo
from contrastlab.objectives.layers import frozen_reads, resolve_layer


def check_fits(cfg, info: ModelInfo, params: LossParams, probe_layers, at: str,
               written: LossParams | None = None) -> None:
    """`cfg` (a contrastlab.plan.config.CellConfig) with its parsed loss `params` against the model `info`
    describes; ConfigError naming `at` and the key. `written`: the loss keys as the config file writes
    them, whose layers are range-checked even where the cell does not read them (else only the
    layers it reads are)."""
    m, n = cfg.model, info.num_layers
    if n is None:
        return
    if m.trainable_layers > n and m.lora is None:
        raise ConfigError(f"{at}: model.trainable_layers = {m.trainable_layers}, but {m.name} has {n} encoder layers")
    if info.max_positions is not None and m.max_len > info.max_positions:
        raise ConfigError(f"{at}: model.max_len = {m.max_len}, but {m.name} has position embeddings for "
                          f"{info.max_positions} tokens")
    for layer in written.named_layers() if written is not None else params.contrast_layers():
        try:
            resolve_layer(layer, n)
        except ValueError as e:
            raise ConfigError(f"{at}: loss layer {layer}: {e} ({m.name})") from None
    frozen = frozen_reads(params.contrast_layers(), n, m.trainable_layers, m.lora is not None)
    if frozen:
        low = n - m.trainable_layers
        raise ConfigError(
            f"{at}: the contrastive term reads encoder layer(s) {frozen}, but only layers {low}..{n - 1} train "
            f"(model.trainable_layers = {m.trainable_layers} of {n}), so it would be a constant with no gradient. "
            f"Contrast layers >= {low}, or train more layers (model.trainable_layers: {n - min(frozen)}), "
            f"or use model.lora (it adapts every layer)")
    for layer in probe_layers:
        try:
            resolve_layer(layer, n)
        except ValueError as e:
            raise ConfigError(f"{at}: probe.layers: {e} ({m.name})") from None
