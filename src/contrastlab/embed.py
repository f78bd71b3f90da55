"""`embed(...)`: [CLS] representations of a split under a trained cell, for the probes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .batching import collate, eval_batches
from .cellconfig import CellConfig
from .data import load_prepared
from .io import atomic_path
from .layers import hidden_state_index
from .model import load_tokenizer
from .train import build, resolve_device


def load_trained(cfg: CellConfig, weights: str | Path, num_labels: int, device) -> torch.nn.Module:
    """The cell's model: the pretrained encoder with the trained weights (what trained) loaded on top."""
    model = build(cfg, num_labels, device)
    trained = load_file(str(weights), device=str(device))
    missing = set(trained) - set(model.state_dict())
    if missing:
        raise ValueError(f"{weights} holds weights this model does not have, e.g. {sorted(missing)[0]}")
    model.load_state_dict(trained, strict=False)
    return model.eval()


@torch.no_grad()
def embed(cfg: CellConfig, prepared_dir: str | Path, weights: str | Path, out_path: str | Path,
          split: str = "test", layers: list[int] = (), max_samples: int | None = None, seed: int = 0,
          batch_size: int = 64) -> None:
    """Write `out_path` (.npz): cls [N, D] (final layer), layer<l> [N, D] for each requested layer
    (see contrastlab.layers), labels [N] and index [N] (rows of the split), label_names [C]."""
    device = resolve_device(cfg.device)
    data, label_names = load_prepared(prepared_dir)
    ds = data[split]
    index = np.arange(len(ds))
    if max_samples is not None and len(ds) > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(len(ds), max_samples, replace=False))
    ids = [ds["input_ids"][i] for i in index]
    labels = np.asarray(ds["label"])[index]
    model = load_trained(cfg, weights, len(label_names), device)
    pad_id = load_tokenizer(cfg.model.name).pad_token_id
    hs_index = {l: hidden_state_index(l, model.num_layers) for l in layers}
    out = {"cls": np.zeros((len(ids), model.hidden_size), np.float32)}
    out.update({f"layer{l}": np.zeros_like(out["cls"]) for l in layers})
    for idx in eval_batches([len(s) for s in ids], batch_size):
        batch = collate(ids, idx, pad_id, device=device)
        enc = model.encode(batch["input_ids"], batch["attention_mask"], output_hidden_states=bool(layers))
        out["cls"][idx] = enc.last_hidden_state[:, 0].float().cpu().numpy()
        for l, h in hs_index.items():
            out[f"layer{l}"][idx] = enc.hidden_states[h][:, 0].float().cpu().numpy()
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, labels=labels, index=index, label_names=np.asarray(label_names), **out)
