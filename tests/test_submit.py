"""`contrastlab submit`: the Snakemake controller as a job of the real single-node SLURM cluster
that tests/test_slurm.py brings up (tools/slurm-up.sh). A controller killed part-way (SIGKILL:
it leaves Snakemake's lock and its jobs behind) is resubmitted, and the second one unlocks,
cancels what the first left and finishes the study without redoing what was done.
Slow (a SLURM job wave costs ~15 s): the DAG is prepare, two trainings and the aggregate."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from contrastlab.plan import layout
from contrastlab.operations.controller import job_prefix
from test_slurm import FAST_POLL, slurm_cluster  # noqa: F401 - the cluster fixture
from workflow_helpers import REPO, local_env, snakemake

pytestmark = pytest.mark.slurm
CELLS = ("baseline", "smooth_label_smoothing0.1")


def contrastlab(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**local_env(), "PATH": os.environ["PATH"]}  # SLURM's real client tools, not the test stand-in
    return subprocess.run([sys.executable, "-m", "contrastlab.cli", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)


def queued(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def wait_until(what: str, ready, timeout: float, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end:
            tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(1)


def submit(workdir: Path, config: Path) -> str:
    done = contrastlab(workdir, "submit", str(config), "--profile", str(REPO / "profiles/slurm"), "--time", "10",
                       "--every", "2", "--", *FAST_POLL)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("SLURM job ")[1].split(",")[0]


def test_the_controller_runs_as_a_slurm_job_and_a_resubmission_after_it_died_finishes_the_study(
        slurm_cluster, tiny_deberta_dir, tmp_path):  # noqa: F811
    cfg = yaml.safe_load((REPO / "tests/configs/slurm_tiny.yaml").read_text())
    cfg["model"]["name"] = str(tiny_deberta_dir)
    cfg["probe"] = {"enabled": False}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"

    first = submit(tmp_path, config)
    again = contrastlab(tmp_path, "submit", str(config), "--profile", str(REPO / "profiles/slurm"))
    assert again.returncode == 1 and f"already queued or running: job {first}" in again.stderr
    log1 = tmp_path / layout.controller_log("results").replace("%j", first)
    # once the data is prepared, kill Snakemake as a node failure would: no chance to clean up
    wait_until("the prepare job", lambda: any(results.glob("prepared/*/labels.json")), 300, log1)
    os.kill(int(re.search(r"snakemake \(pid (\d+)\)", log1.read_text()).group(1)), signal.SIGKILL)
    wait_until("the first controller to go", lambda: not queued(first), 60, log1)
    locks = tmp_path / ".snakemake/locks"
    assert locks.is_dir() and any(locks.iterdir()), log1.read_text()[-3000:]  # it died holding the lock

    second = submit(tmp_path, config)
    log2 = tmp_path / layout.controller_log("results").replace("%j", second)
    wait_until("the second controller to finish", lambda: not queued(second), 600, log2)
    text = log2.read_text()
    assert "unlocked the directory" in text and "snakemake exited with 0" in text, text[-4000:]
    assert "2/2 runs done" in text  # the progress line, in the controller's log
    for cell in CELLS:
        assert (results / "cells" / cell / "seed1/train/metrics.json").exists()
    dry = snakemake(tmp_path, config, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr  # nothing of the DAG is left
    # what ran where: prepare once (the resubmission did not redo it), under the controller's prefix
    prepares = list((results / "logs/slurm").glob("rule_prepare/**/*.log"))
    assert len(prepares) == 1, prepares
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", f"{first},{second}", "-o", "JobID,JobName,ReqCPUS,Timelimit"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(acct) == sorted(f"{j}|{job_prefix(tmp_path)}|1|00:10:00" for j in (first, second))
    status = contrastlab(tmp_path, "status", str(config))
    assert "Progress: 2/2 runs done" in status.stdout
