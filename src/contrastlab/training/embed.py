"""`embed(...)`: [CLS] representations of a split under a trained cell, for the probes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from contrastlab.training.batching import collate, eval_batches
from contrastlab.plan.config import CellConfig, ProbeConfig, RuntimeConfig
from contrastlab.operations.devices import init_device, pick_device
from contrastlab.operations.io import atomic_path
from contrastlab.objectives.layers import hidden_state_index
from contrastlab.training.jobmodel import job_model
from contrastlab.data.prepared import load_prepared


@torch.inference_mode()
def embed(cfg: CellConfig, probe: ProbeConfig, runtime: RuntimeConfig, prepared_dir: str | Path,
          weights: str | Path, out_path: str | Path) -> None:
    """Write `out_path` (.npz): cls [N, D] (final layer), layer<l> [N, D] for each of `probe.layers`
    (contrastlab.objectives.layers), labels [N], index [N] (positions in the split), label_names [C]. The
    examples are a stratified subsample of `probe.max_samples` (seeded with the cell's seed)."""
    device = init_device(pick_device(runtime.device, jobs_per_gpu=runtime.jobs_per_gpu))  # before any CUDA call
    data = load_prepared(prepared_dir)
    split = data.splits[probe.split]
    index = split.subsample(probe.max_samples, cfg.seed)
    ids = [split.ids[i] for i in index]
    built = job_model(cfg, runtime, device, len(data.names), weights=weights, probe_layers=probe.layers)
    model, precision = built.model, built.precision
    pad_id = data.summary["pad_id"]
    layers = list(probe.layers)
    hs_index = {l: hidden_state_index(l, model.num_layers) for l in layers}
    out = {"cls": np.zeros((len(ids), model.hidden_size), np.float32)}
    out.update({f"layer{l}": np.zeros_like(out["cls"]) for l in layers})
    for idx in eval_batches([len(s) for s in ids], runtime.eval_batch_size):
        batch = collate(ids, idx, pad_id, device=device)
        with precision.autocast():
            enc = model.encode(batch["input_ids"], batch["attention_mask"], output_hidden_states=bool(layers))
        out["cls"][idx] = enc.last_hidden_state[:, 0].float().cpu().numpy()
        for l, h in hs_index.items():
            out[f"layer{l}"][idx] = enc.hidden_states[h][:, 0].float().cpu().numpy()
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, labels=split.labels[index], index=index, label_names=np.asarray(data.names), **out)
