"""Resumable training state: written atomically at each epoch's end and on preemption signals.

A checkpoint is reused only if it was written for the same cell fingerprint, so a cell whose
config changed starts over instead of resuming someone else's run.
"""
from __future__ import annotations

import random
import signal
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path


def save(path: Path, *, fingerprint: str, model, optimizer, scheduler, epoch: int, step_in_epoch: int,
         global_step: int, history: list[dict], elapsed_s: float) -> None:
    state = {
        "fingerprint": fingerprint,
        "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
        "history": history, "elapsed_s": elapsed_s,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def peek(path: Path, fingerprint: str) -> dict | None:
    """The state saved at `path` if it was written for `fingerprint`, else None (absent or stale)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state["fingerprint"] == fingerprint else None


def load(path: Path, fingerprint: str, model, optimizer, scheduler) -> dict | None:
    """Restore the state saved at `path` into model/optimizer/scheduler/RNGs; None if absent or stale."""
    state = peek(path, fingerprint)
    if state is None:
        return None
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state["trainable"].items():
            params[n].copy_(t)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state


class PreemptionFlag:
    """Set by SIGTERM (what SLURM sends before killing a job) or SIGUSR1; the loop checks it at
    each optimizer step, writes a checkpoint and exits so the job's retry resumes."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    def __bool__(self) -> bool:
        return self.signum is not None


class Preempted(SystemExit):
    """Raised after the checkpoint is written; exit status 128 + signal number, as if killed by it."""
