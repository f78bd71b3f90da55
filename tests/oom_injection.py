"""Test fault injection: a "device" that runs out of memory on micro-batches above a size.

$CONTRASTLAB_TEST_MAX_MICRO_BATCH ("8" for every cell, or "cellA=8,cellB=4") sets the size;
`Trainer.step` then raises torch.OutOfMemoryError before a micro-batch above it. The package knows
nothing of it: the `max_micro_batch` fixture (conftest.py) patches the test's own process, and
puts oom_site/ first on the PYTHONPATH of the workflow's jobs (`python_path`), whose sitecustomize
patches contrastlab.training.train when a job imports it. Torch-free at import: every Python the workflow
starts (Snakemake itself too) imports this when the variable is set.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

VAR = "CONTRASTLAB_TEST_MAX_MICRO_BATCH"
SITE = Path(__file__).resolve().parent / "oom_site"


def limit_of(cell: str) -> int | None:
    value = os.environ.get(VAR, "")
    limits = dict(part.split("=", 1) if "=" in part else ("*", part) for part in value.split(",") if part)
    limit = limits.get(cell, limits.get("*"))
    return int(limit) if limit else None


def limited_step(step):
    """`Trainer.step` that first raises a GPU out-of-memory error for a micro-batch over the limit."""
    def step_with_limit(self, idx, epoch, n):
        import torch

        from contrastlab.training.batching import micro_batches

        limit, largest = limit_of(self.cfg.cell), max(len(p) for p in micro_batches(idx, self.micro))
        if limit is not None and largest > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {VAR}: at most {limit} examples per "
                                         f"micro-batch, this one has {largest})")
        return step(self, idx, epoch, n)
    return step_with_limit


class _PatchTrainOnImport(importlib.abc.MetaPathFinder):
    """Wraps Trainer.step as soon as contrastlab.training.train has been executed, in a job's process."""

    def find_spec(self, name, path, target=None):
        if name != "contrastlab.training.train":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.Trainer.step = limited_step(module.Trainer.step)
        spec.loader.exec_module = exec_module
        return spec


def patch_on_import() -> None:
    sys.meta_path.insert(0, _PatchTrainOnImport())


def python_path(src: Path) -> str:
    """The PYTHONPATH of a workflow run from `src`: with oom_site/ first while the variable is set."""
    return os.pathsep.join([str(SITE), str(src)] if os.environ.get(VAR) else [str(src)])
