"""Run the repository's Snakefile on a test config in a scratch directory."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from oom_injection import python_path

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The SLURM executor plugin runs `scontrol show config` when Snakemake starts; where SLURM's
# client is installed but no controller answers (after tests/test_slurm.py), that waits 10 s. A
# stand-in that fails at once keeps the local runs of these tests at their own speed.
FAKE_BIN = Path(tempfile.mkdtemp(prefix="contrastlab-fakebin-"))
(FAKE_BIN / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(FAKE_BIN / "scontrol").chmod(0o755)


def local_env(root: Path = REPO) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path(root / "src"),
            "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}"}


def set_key(cfg: dict, key: str, value) -> dict:
    """cfg with `key` (dotted: "experiments.smooth.train") set to value."""
    section, _, name = key.rpartition(".")
    target = cfg
    for part in filter(None, section.split(".")):
        target = target.setdefault(part, {})
    target[name] = value
    return cfg


def write_config(path: Path, model_dir: Path, base: str = "e2e_tiny.yaml", **overrides) -> Path:
    cfg = yaml.safe_load((REPO / "tests" / "configs" / base).read_text())
    cfg["model"]["name"] = str(model_dir)
    for key, value in overrides.items():
        set_key(cfg, key, value)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow and the package, so a test may edit code without touching the repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("Snakefile", "config.yaml", "config", "workflow", "src", "profiles", "environment.yml"):
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, config: Path | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the Snakefile of `workdir` if it has one (a copy), else the repository's, in `workdir`."""
    root = workdir if (workdir / "Snakefile").exists() else REPO
    cmd = [*SNAKEMAKE, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           *(["--configfile", str(config)] if config is not None else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=local_env(root))
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(workdir: Path, config: Path | None) -> dict[str, int]:
    """Rule -> number of jobs a dry run would execute (from Snakemake's job-stats table)."""
    out = snakemake(workdir, config, "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    counts = dict(re.findall(r"^\s*([a-z_]+)\s+(\d+)\s*$", text, flags=re.M))
    for name in ("total", "all"):
        counts.pop(name, None)
    return {k: int(v) for k, v in counts.items()}


def planned_cells(workdir: Path, config: Path | None, rule: str = "train") -> list[str]:
    """The cell x seed wildcards of every `rule` job a dry run plans, sorted."""
    out = snakemake(workdir, config, "-n", "--forcerun", rule, "--until", rule)
    blocks = [b for b in (out.stdout + out.stderr).split("\n\n") if f"rule {rule}:" in b]
    return sorted(re.search(r"wildcards: (.*)", b).group(1).strip() for b in blocks)
