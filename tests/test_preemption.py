"""Preemption of a real training run: SIGTERM (what SLURM sends before it kills a job) makes the
job write its checkpoint and exit 143; the retry resumes from it and the finished cell equals an
uninterrupted run. Checked on a bare training process and through Snakemake, whose retry (the
profiles' `retries`) must find the checkpoint that it does not treat as an output.
Also: a failed cell does not stop the others (profiles/default's keep-going), and the next run
plans only what failed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from workflow_helpers import REPO, SNAKEMAKE, local_env

TIMING_KEYS = {"train_time_s", "step_time_s", "peak_memory_mb", "samples_per_s", "provenance"}
STEP_LINE = re.compile(r"step (\d+)/(\d+) loss")
# One cell long enough to be interrupted mid-epoch (1000 examples, 63 optimizer steps per epoch).
CONFIG = {
    "results": "results",
    "data": {"source": "embedded", "max_train": 1000, "max_eval": 60},
    "model": {"name": "TINY_MODEL", "max_len": 32, "trainable_layers": 2},
    "train": {"epochs": 2, "batch_size": 16, "grad_accum": 1, "lr_top": 1.0e-3, "lr_head": 1.0e-3, "precision": "fp32"},
    "runtime": {"device": "cpu", "threads": 1, "log_every": 1},
    "probe": {"max_samples": 60, "folds": 3},
    "experiments": {"baseline": {"family": "baseline"}},
}
# What a training job runs (workflow/scripts/train.py without Snakemake): log file, prepared dir, out dir, config.
DRIVER = """
import json, sys
from pathlib import Path
import torch
from contrastlab.plan import layout
from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.operations.jobs import job
from contrastlab.training.train import train
log, prepared, out, cfg = sys.argv[1:]
out = Path(out)
torch.set_num_threads(1)
with job(log):
    train(CellConfig.model_validate(json.loads(cfg)), RuntimeConfig(device="cpu", threads=1, log_every=1), prepared,
          {k: out / Path(v).name for k, v in layout.STAGE_FILES["train"].items()},
          {k: out / Path(v).name for k, v in layout.TRAIN_STATE.items()})
"""


def _env():
    return local_env()


def _snakemake(workdir: Path, config: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def _write_config(path: Path, model_dir: Path, **experiments) -> Path:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["model"]["name"] = str(model_dir)
    cfg["experiments"].update(experiments)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cell_dir(workdir: Path, cell: str = "baseline") -> Path:
    return workdir / "results" / "cells" / cell / "seed1" / "train"


def _wait_for_steps(log: Path, proc: subprocess.Popen, n: int, timeout: float = 300) -> int:
    """Poll the training log until it reports optimizer step >= n; that step."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        steps = [int(m.group(1)) for m in STEP_LINE.finditer(log.read_text())] if log.exists() else []
        if steps and max(steps) >= n:
            return max(steps)
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before step {n}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no step {n} in {log} after {timeout} s")


def _assert_same_result(out: Path, ref: Path):
    m, m_ref = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    assert {k: v for k, v in m.items() if k not in TIMING_KEYS} == {k: v for k, v in m_ref.items() if k not in TIMING_KEYS}
    h, h_ref = pd.read_csv(out / "history.csv"), pd.read_csv(ref / "history.csv")
    pd.testing.assert_frame_equal(h.drop(columns="time_s"), h_ref.drop(columns="time_s"), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), pd.read_csv(ref / "predictions.csv"),
                                  check_exact=True)
    assert (out / "weights.safetensors").read_bytes() == (ref / "weights.safetensors").read_bytes()
    assert not (out / "checkpoint.pt").exists()  # a finished cell leaves no checkpoint behind


@pytest.fixture(scope="module")
def reference(tiny_deberta_dir, tmp_path_factory):
    """An uninterrupted Snakemake run of the cell's training: its outputs and prepared data."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    config = _write_config(workdir / "config.yaml", tiny_deberta_dir)
    target = str(_cell_dir(workdir).relative_to(workdir) / "metrics.json")
    proc = subprocess.run(_snakemake(workdir, config, "--cores", "1", target), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_sigterm_mid_epoch_writes_a_checkpoint_exits_143_and_the_rerun_equals_an_uninterrupted_run(
        reference, tmp_path):
    ref = _cell_dir(reference)
    cfg = (ref / "config.json").read_text()
    prepared = next((reference / "results" / "prepared").iterdir())
    out, log = tmp_path / "train", tmp_path / "train.log"
    cmd = [sys.executable, "-c", DRIVER, str(log), str(prepared), str(out), cfg]

    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = _wait_for_steps(log, proc, 3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 128 + signal.SIGTERM
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    stopped_at = int(re.search(r"signal 15: checkpoint written at step (\d+)", log.read_text()).group(1))
    assert seen <= stopped_at < 126, "stopped mid-run, at the optimizer step after the signal"

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    epoch = 1 if stopped_at < 63 else 2
    assert f"resuming baseline from epoch {epoch}, step {stopped_at}" in log.read_text()
    _assert_same_result(out, ref)


def test_snakemake_retries_a_preempted_training_job_which_resumes_while_a_failed_cell_leaves_the_others_done(
        reference, tiny_deberta_dir, tmp_path):
    # a second cell whose loss explodes: it fails (twice, with the retry) and must not stop the first
    config = _write_config(tmp_path / "config.yaml", tiny_deberta_dir,
                           broken={"family": "baseline", "train": {"lr_top": 1.0e30, "lr_head": 1.0e30}})
    targets = [str(_cell_dir(tmp_path, c).relative_to(tmp_path) / "metrics.json") for c in ("baseline", "broken")]
    log = tmp_path / "results/logs/train/baseline/seed1.log"
    run_log = tmp_path / "snakemake.log"
    # --retries 1 as in profiles/slurm; keep-going comes from profiles/default, which Snakemake loads itself
    snake = subprocess.Popen(_snakemake(tmp_path, config, "--cores", "1", "--retries", "1", *targets),
                             env=_env(), stdout=run_log.open("w"), stderr=subprocess.STDOUT)
    try:
        _wait_for_steps(log, snake, 3)
        trainer = _training_process(snake.pid)
        trainer.send_signal(signal.SIGTERM)
        snake.wait(600)
    finally:
        if snake.poll() is None:
            snake.send_signal(signal.SIGINT)
            snake.wait(60)
    run = run_log.read_text()
    # the first attempt checkpointed and exited 143; Snakemake retried it (and emptied the rule's log
    # for the new attempt, so the first attempt's lines are only in Snakemake's output) ...
    assert re.search(r"signal 15: checkpoint written at step \d+", run) and "exit status 143" in run, run[-3000:]
    # ... and the retry resumed from the checkpoint, which Snakemake kept: it is no declared output
    assert re.match(r".*resuming baseline from epoch 1, step \d+", log.read_text()), log.read_text()[:2000]
    _assert_same_result(_cell_dir(tmp_path), _cell_dir(reference))

    assert snake.returncode != 0  # the broken cell failed ...
    assert not (_cell_dir(tmp_path, "broken") / "metrics.json").exists()
    assert "the loss is" in (tmp_path / "results/logs/train/broken/seed1.log").read_text()
    # ... and the next run of the same targets redoes only it
    out = subprocess.run(_snakemake(tmp_path, config, "-n", *targets, "--quiet", "rules"), env=_env(),
                         capture_output=True, text=True)
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M))
    assert planned == {"train": "1", "total": "1"}, out.stdout + out.stderr


def _training_process(snakemake_pid: int) -> psutil.Process:
    """The Python process that runs the train rule's script under this Snakemake run."""
    for p in psutil.Process(snakemake_pid).children(recursive=True):
        try:
            if any(a.endswith("train.py") for a in p.cmdline()) and p.name().startswith("python"):
                return p
        except psutil.NoSuchProcess:
            continue
    raise AssertionError("no training process under Snakemake")
