"""How code changes reach the DAG.

Snakemake reruns a job when its params change, but it does not look inside an imported package.
Each rule therefore gets a `code` param: a hash of the source files that define its result.
Editing `objectives/scl.py` changes the hash of the scl cells only; editing `train.py` changes
every cell's; editing `probe.py` reruns only probes and what depends on them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .objectives import source_files

PACKAGE = Path(__file__).resolve().parent

STAGE_FILES = {
    "prepare": ["data.py", "model.py"],
    "train": ["train.py", "model.py", "optim.py", "batching.py", "checkpoint.py", "layers.py",
              "cellconfig.py", "metrics.py", "objectives/__init__.py"],
    "embed": ["embed.py", "model.py", "batching.py", "layers.py"],
    "probe": ["probe.py"],
    "plot": ["plots.py"],
}


def _expand(paths):
    """Files of `paths`; a module may be a file `x.py` or a package `x/` (all its .py files)."""
    for p in paths:
        p = Path(p).resolve()
        pkg = p.with_suffix("")
        if pkg.is_dir():
            yield from pkg.rglob("*.py")
        if p.is_file():
            yield p


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(set(_expand(paths))):
        h.update(p.relative_to(PACKAGE).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def stage_code(stage: str, family: str | None = None) -> str:
    """Hash of the files behind `stage` (and, for train, the family's loss code)."""
    paths = [PACKAGE / f for f in STAGE_FILES[stage]]
    if family is not None:
        paths += source_files(family)
    return _digest(paths)
