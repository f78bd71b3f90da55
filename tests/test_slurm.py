"""The workflow on a real SLURM scheduler: a single-node cluster on localhost (tools/slurm-up.sh:
munge, slurmctld, slurmd, slurmdbd + MariaDB, two fake GPUs) driven through
`snakemake --profile profiles/slurm`, exactly as a user submits to their cluster.

Needs root on Debian (apt installs the daemons on first use, ~1 min); elsewhere the tests are
skipped and say why. Only the daemons this module started are stopped at the end."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from contrastlab.plan import layout
from oom_injection import python_path
from workflow_helpers import REPO, SNAKEMAKE

pytestmark = pytest.mark.slurm
TOOLS = REPO / "tools"
CELLS = ("baseline", "smooth_label_smoothing0.1")
OUTPUTS = [f for stage in ("train", "embed", "probe", "plot") for f in layout.STAGE_FILES[stage].values()]
# measurements and where the job ran, not results
TIMING_KEYS = {"train_time_s", "step_time_s", "peak_memory_mb", "samples_per_s", "provenance"}
RUN_TIMEOUT_S = 900
# Test-only: the plugin waits 40 s before its first status check; on an idle one-node cluster 2 s suffice.
FAST_POLL = ["--slurm-init-seconds-before-status-checks", "2"]


def why_no_cluster() -> str | None:
    """Why a SLURM cluster cannot be brought up here, or None if it can."""
    if os.environ.get("CONTRASTLAB_SKIP_SLURM") == "1":
        return "CONTRASTLAB_SKIP_SLURM=1 is set"
    if platform.system() != "Linux":
        return f"needs Linux, this is {platform.system()}"
    if os.geteuid() != 0:
        return "needs root to install and start munged/slurmctld/slurmd (run `make test` as root, e.g. in CI)"
    if not Path("/etc/debian_version").exists():
        return "needs Debian/Ubuntu: tools/slurm-up.sh installs the Debian packages slurmctld, slurmd, slurm-client, munge"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


def _say(msg: str) -> None:
    """Print past pytest's capture, so the reason shows in the live output as well as in -ra."""
    print(f"\n[test_slurm] {msg}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = why_no_cluster()
    if reason:
        _say(f"SLURM TESTS NOT RUN: {reason}")
        pytest.skip(f"SLURM tests not run: {reason}")
    record = tmp_path_factory.mktemp("slurm") / "started-by-test"
    env = {**os.environ, "RECORD": str(record), "RESTART_RUNNING": "0"}
    t0 = time.monotonic()
    up = subprocess.run(["bash", str(TOOLS / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=900)
    up_s = time.monotonic() - t0
    try:
        assert up.returncode == 0, f"tools/slurm-up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        started = record.read_text().split("\n") if record.exists() else []
        _say(f"cluster up in {up_s:.1f} s; started by this test: {[s.split()[-1] for s in started if s] or 'nothing'}")
        yield {"up_s": up_s}
    finally:
        if record.exists():
            down = subprocess.run(["bash", str(TOOLS / "slurm-down.sh"), str(record)], capture_output=True, text=True)
            _say("slurm-down: " + " | ".join(down.stdout.strip().splitlines()))


def write_config(path: Path, model_dir: Path, **overrides) -> Path:
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "slurm_tiny.yaml").read_text())
    cfg["model"]["name"] = str(model_dir)
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        cfg[section][name] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_cmd(workdir: Path, config: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path(REPO / "src")}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, text=True)


def finish(proc: subprocess.Popen, log: Path, what: str, timeout: float = RUN_TIMEOUT_S) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Snakemake cancels its SLURM jobs on SIGINT
        proc.wait(60)
        raise AssertionError(f"{what} did not finish in {timeout} s:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{log.read_text()[-6000:]}"


def result_metrics(workdir: Path, cell: str) -> dict:
    base = workdir / "results" / "cells" / cell / "seed1"
    train = json.loads((base / "train/metrics.json").read_text())
    return {"train": {k: v for k, v in train.items() if k not in TIMING_KEYS},
            "probe": json.loads((base / "probe/metrics.json").read_text()),
            "predictions": pd.read_csv(base / "train/predictions.csv").to_dict("list")}


def slurm_jobs(workdir: Path) -> dict[str, str]:
    """SLURM job id -> the rule or group it ran, from the per-job logs the profile keeps
    (results/logs/slurm/rule_<rule>/... or group_<group>/.../<id>.log)."""
    root = workdir / layout.slurm_log_dir("results")
    return {p.stem: p.relative_to(root).parts[0] for p in root.rglob("*.log")}


def sacct(job_ids, fields: str) -> dict[str, dict]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", f"JobID,{fields}"],
                         capture_output=True, text=True, check=True).stdout
    keys = ["id", *fields.lower().split(",")]
    rows = [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def test_tiny_workflow_through_the_slurm_profile_packs_each_cell_into_two_submissions_and_retries_an_oom(
        slurm_cluster, tiny_deberta_dir, tmp_path, max_micro_batch):
    config = write_config(tmp_path / "config.yaml", tiny_deberta_dir)
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    # the second cell's "GPU" holds 8 examples per micro-batch: its first attempt runs out of memory
    max_micro_batch(f"{CELLS[1]}=8")
    t0 = time.monotonic()
    # the local reference runs alongside (with the same retry): the SLURM run mostly waits on polls
    local = start(snakemake_cmd(local_dir, config, "--cores", "1", "--resources", "gpu=1", "--retries", "1"),
                  tmp_path / "local.log")
    slurm = start(snakemake_cmd(slurm_dir, config, "--profile", str(REPO / "profiles" / "slurm"), *FAST_POLL),
                  tmp_path / "slurm.log")
    finish(slurm, tmp_path / "slurm.log", "snakemake --profile profiles/slurm")
    slurm_s = time.monotonic() - t0
    finish(local, tmp_path / "local.log", "the local run")
    _say(f"tiny workflow through SLURM: {slurm_s:.0f} s (cluster up: {slurm_cluster['up_s']:.1f} s)")

    for cell in CELLS:
        for f in OUTPUTS:
            assert (slurm_dir / "results/cells" / cell / "seed1" / f).exists(), f"{cell}/{f}"
        assert result_metrics(slurm_dir, cell) == result_metrics(local_dir, cell), cell
    # the aggregate tables too: nothing of the DAG is left to do
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    dry = subprocess.run(snakemake_cmd(slurm_dir, config, "-n"), capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    # packing: prepare, then per cell one GPU submission (train + embed) and one CPU submission
    # (probe + plot), then the aggregate; plus the retry of the cell that ran out of memory
    jobs = slurm_jobs(slurm_dir)
    kinds = sorted(jobs.values())
    gpu, cpu = "group_gpu_embed_train", "group_cpu_plot_probe"  # the plugin's log folders: group_<name>_<rules>
    assert kinds == sorted(["rule_prepare", "rule_aggregate", *[gpu, cpu] * len(CELLS), gpu]), kinds
    acct = sacct(jobs, "Partition,Account,AllocTRES,State")
    assert len(acct) == 2 + 2 * len(CELLS) + 1 == 7  # the submissions SLURM accounted (4 per cell before packing)
    assert {(a["partition"], a["account"]) for a in acct.values()} == {("main", "contrastlab")}
    assert sorted(a["state"] for a in acct.values()) == ["COMPLETED"] * 6 + ["FAILED"]
    gpu_jobs = {jobs[i] for i, a in acct.items() if "gres/gpu=1" in a["alloctres"]}
    assert gpu_jobs == {gpu}  # the CPU group, prepare and aggregate ask for none
    # the retried cell: its first attempt ran out of memory, the second ran half the micro-batch
    retried = json.loads((slurm_dir / "results/cells" / CELLS[1] / "seed1/train/metrics.json").read_text())
    assert (retried["micro_batch"], retried["grad_accum"]) == (8, 4)
    status = pd.read_csv(slurm_dir / "results/status.csv").set_index("cell")
    assert status.loc[CELLS[1], "first_cause"] == "GPU out of memory" and status.loc[CELLS[1], "state"] == "done"
    assert status.loc[CELLS[0], "attempts"] == 1 and retried["provenance"]["slurm_job"] is not None
