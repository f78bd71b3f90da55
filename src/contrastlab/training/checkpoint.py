"""Resumable training state: written atomically at epoch ends and on preemption signals.

A checkpoint holds what trained (not the frozen encoder), the optimizer, scheduler and gradient
scaler, the random generators' states (the CPU's, numpy's, Python's, and the CUDA generator of
the device the module is on: never another GPU's, whose state would initialise CUDA there), and
the loop's own state (step, history, best validation weights), so a resumed run equals an
uninterrupted one. It is reused only if it was
written for the same cell fingerprint, so a cell whose config changed starts over instead of
resuming someone else's run. The micro-batch size is not part of the fingerprint: a retry that
halves it after running out of memory resumes the same steps.
"""
from __future__ import annotations

import random
import signal
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contrastlab.operations.io import atomic_path


def _device_of(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def save(path: Path, *, fingerprint: str, module: nn.Module, optimizer, scheduler, scaler=None, **loop) -> None:
    device = _device_of(module)
    state = {
        "fingerprint": fingerprint,
        "trainable": {n: p.detach().cpu() for n, p in module.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        "loop": loop,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def peek(path: Path, fingerprint: str) -> dict | None:
    """The state saved at `path` if it was written for `fingerprint`, else None (absent or stale)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state["fingerprint"] == fingerprint else None


def load(path: Path, fingerprint: str, module: nn.Module, optimizer, scheduler, scaler=None) -> dict | None:
    """Restore the state saved at `path` into module/optimizer/scheduler/scaler/RNGs and return
    the loop's state; None if absent or stale."""
    state = peek(path, fingerprint)
    if state is None:
        return None
    params = dict(module.named_parameters())
    with torch.no_grad():
        for n, t in state["trainable"].items():
            params[n].copy_(t)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    device = _device_of(module)
    if state["rng"]["cuda"] is not None and device.type == "cuda":  # a retry may run on another GPU: this one's
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    return state["loop"]


class PreemptionFlag:
    """Set by SIGTERM (what SLURM sends before it kills a preempted or cancelled job) or SIGUSR1
    (what the profile asks SLURM to send 5 minutes before the time limit); the loop checks it at
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

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.cause = "time_limit" if signum == signal.SIGUSR1 else "preempted"
