"""Run the repository's Snakefile on a test config in a scratch directory."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def write_config(path: Path, model_dir: Path, **overrides) -> Path:
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "e2e_tiny.yaml").read_text())
    cfg["model"]["name"] = str(model_dir)
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        target = cfg
        for part in filter(None, section.split(".")):
            target = target.setdefault(part, {})
        target[name] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow and the package, so a test may edit code without touching the repo."""
    for part in ("Snakefile", "workflow", "src", "profiles", "environment.yml"):
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the Snakefile of `workdir` if it has one (a copy), else the repository's, in `workdir`."""
    root = workdir if (workdir / "Snakefile").exists() else REPO
    cmd = [*SNAKEMAKE, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    """Rule -> number of jobs a dry run would execute (from Snakemake's job-stats table)."""
    out = snakemake(workdir, config, "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    counts = dict(re.findall(r"^\s*([a-z_]+)\s+(\d+)\s*$", text, flags=re.M))
    for name in ("total", "all"):
        counts.pop(name, None)
    return {k: int(v) for k, v in counts.items()}
