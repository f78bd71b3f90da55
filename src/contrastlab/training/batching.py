"""Optimizer steps and micro-batches with dynamic padding (pad to the batch's longest sequence).

The examples of each optimizer step are drawn first (the effective batch, `batch_size x
grad_accum` examples, length-grouped: sorted within shuffled pools, then the steps shuffled),
and only then split into micro-batches. So which examples share a step, and so the contrast set,
does not depend on the micro-batch size: a retry that halves it (after running out of memory)
trains on the same steps. The order of epoch e depends only on (seed, e), so a run resumed
mid-epoch replays the same steps.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

POOL_STEPS = 25  # steps per sorted pool: large enough to group lengths, small enough to stay random


def epoch_steps(lengths: Sequence[int], step_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays of the epoch's optimizer steps (the last may be short), length-grouped."""
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    pool = step_size * POOL_STEPS
    steps = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        steps += [chunk[i:i + step_size] for i in range(0, len(chunk), step_size)]
    return [steps[i] for i in rng.permutation(len(steps))]


def micro_batches(step: np.ndarray, micro: int) -> list[np.ndarray]:
    """A step's examples as consecutive micro-batches of `micro` (its examples are length-sorted)."""
    return [step[i:i + micro] for i in range(0, len(step), micro)]


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Batches of similar length in a fixed order (longest first, so a memory error shows at once)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(input_ids: Sequence[Sequence[int]], idx: np.ndarray, pad_id: int, labels=None,
            device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Pad the sequences `idx` of `input_ids` to their longest: input_ids, attention_mask [B, T]; labels [B]."""
    seqs = [input_ids[i] for i in idx]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[row, :len(s)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels is not None:
        batch["labels"] = torch.as_tensor(np.asarray(labels)[idx], dtype=torch.long)
    return {k: to_device(v, device) for k, v in batch.items()}


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on `device`. To a GPU it goes from page-locked memory without blocking the host
    (a copy from pageable memory waits for the GPU); the stream keeps it ordered before its use."""
    device = torch.device(device)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
