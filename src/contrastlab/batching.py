"""Micro-batches with dynamic padding: pad to the longest sequence of the batch, not to max_len.

Training batches are length-grouped (sort within shuffled mega-batches, then shuffle the
batches), which on short movie-review snippets cuts padding several-fold. The order of epoch
e depends only on (seed, e), so a run resumed mid-epoch replays the same batches.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

MEGABATCH = 50  # batches per sorted pool: large enough to group lengths, small enough to stay random


def train_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays of the epoch's micro-batches, length-grouped and shuffled reproducibly."""
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    pool = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


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
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if labels is not None:
        batch["labels"] = torch.as_tensor(np.asarray(labels)[idx], dtype=torch.long).to(device)
    return batch


def step_groups(batches: list, grad_accum: int) -> Iterator[list]:
    """Consecutive groups of `grad_accum` micro-batches, one per optimizer step (the last may be short)."""
    for i in range(0, len(batches), grad_accum):
        yield batches[i:i + grad_accum]
