"""`contrastlab submit my.yaml --profile profiles/slurm`: the Snakemake controller as a SLURM job.

The login node then needs nothing running: `submit` queues one small, long job (1 CPU,
`runtime.controller_min` minutes, its log under <results>/logs/controller/) that runs
`contrastlab controller`, which runs Snakemake with the profile, and Snakemake submits the study's
jobs from there. Every minute (`--every`), the controller's log gets the study's progress line
(contrastlab.operations.progress) if it changed.

Resuming. SLURM signals the controller 5 minutes before its time limit; it passes the signal
to Snakemake as Ctrl-C, which cancels the study's jobs (a training job checkpoints first) and
releases its lock. `contrastlab submit` again continues where it stopped: finished jobs are not
redone, incomplete outputs are (`--rerun-incomplete`), training resumes from its checkpoint.

A controller that died without releasing the lock (killed, node failure) leaves Snakemake's
lock and perhaps its jobs. The next controller unlocks only when no other controller of this
directory is queued or running, and first cancels the jobs the dead one left (the study's jobs
are named `<controller name>_<run id>` through `--slurm-jobname-prefix`), so that no two jobs
write the same cell. `submit` refuses while a controller of the same directory is queued or running.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from contrastlab.plan import layout

REPO = Path(__file__).resolve().parents[3]
SIGNAL_BEFORE_S = 300  # SLURM's warning before the controller's time limit (at most a quarter of it)
CONTROLLER_MEM_MB = 2000


class SubmitError(RuntimeError):
    """The controller cannot be submitted or started: the message says why, in one line."""


def job_prefix(workdir: str | Path) -> str:
    """The name of the controller's job, and the prefix of every job it submits: one per directory
    (Snakemake's lock is per directory)."""
    return "contrastlab-" + hashlib.sha256(str(Path(workdir).resolve()).encode()).hexdigest()[:10]


def profile_resources(profile: str | Path) -> dict:
    """The profile's default partition and account, which the controller's job uses too."""
    path = Path(profile) / "config.yaml"
    if not path.is_file():
        raise SubmitError(f"--profile {profile}: no config.yaml there (e.g. profiles/slurm)")
    defaults = (yaml.safe_load(path.read_text()) or {}).get("default-resources") or {}
    return {k: str(defaults[k]) for k in ("slurm_partition", "slurm_account") if defaults.get(k)}


def _squeue(*args: str) -> list[list[str]]:
    """squeue rows (id, name, state) of this user's jobs."""
    if shutil.which("squeue") is None:
        raise SubmitError("squeue is not on PATH: contrastlab submit runs where SLURM's client tools are "
                          "(a cluster's login node); elsewhere run snakemake --cores all")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i|%j|%T", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SubmitError(f"squeue failed: {out.stderr.strip() or out.stdout.strip()}")
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def other_controllers(prefix: str) -> list[str]:
    """Ids of queued or running controllers of this directory, this job excepted."""
    me = os.environ.get("SLURM_JOB_ID")
    return [i for i, name, _ in _squeue() if name == prefix and i != me]


def sbatch_command(config: Path, profile: Path, workdir: Path, results: str, minutes: int,
                   extra: list[str], every_s: float = 60.0) -> list[str]:
    prefix = job_prefix(workdir)
    res = profile_resources(profile)
    controller = [sys.executable, "-m", "contrastlab.cli", "controller", str(config), "--profile", str(profile),
                  "--every", str(every_s), *(["--"] + extra if extra else [])]
    return ["sbatch", "--parsable", "--job-name", prefix, "--ntasks", "1", "--cpus-per-task", "1",
            "--mem", str(CONTROLLER_MEM_MB), "--time", str(minutes), f"--signal=B:INT@{min(SIGNAL_BEFORE_S, minutes * 15)}",
            "--output", str(workdir / layout.controller_log(results)), "--chdir", str(workdir),
            *(["--partition", res["slurm_partition"]] if "slurm_partition" in res else []),
            *(["--account", res["slurm_account"]] if "slurm_account" in res else []),
            "--wrap", "exec " + shlex.join(controller)]


def submit(config: Path, profile: Path, results: str, minutes: int, extra: list[str], workdir: Path,
           every_s: float = 60.0) -> str:
    """Queue the controller; -> its SLURM job id."""
    profile_resources(profile)  # a profile that is not one: say so before asking SLURM anything
    prefix = job_prefix(workdir)
    running = other_controllers(prefix)
    if running:
        raise SubmitError(f"a controller of {workdir} is already queued or running: job {running[0]} "
                          f"(its log: {layout.controller_log(results).replace('%j', running[0])}; scancel it to stop)")
    Path(workdir / layout.controller_log(results)).parent.mkdir(parents=True, exist_ok=True)  # sbatch does not
    out = subprocess.run(sbatch_command(config, profile, workdir, results, minutes, extra, every_s), capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SubmitError(f"sbatch refused the controller: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip().split(";")[0]


def snakemake_command(config: Path, profile: Path, prefix: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
            "--profile", str(profile), "--rerun-incomplete", "--slurm-jobname-prefix", prefix, *extra]


def recover_lock(config: Path, profile: Path, prefix: str, say) -> None:
    """After a controller died holding Snakemake's lock: cancel its jobs, then unlock."""
    locks = Path(".snakemake/locks")
    if not (locks.is_dir() and any(locks.iterdir())):
        return
    others = other_controllers(prefix)
    if others:
        raise SubmitError(f"controller job {others[0]} of this directory is queued or running: not unlocking")
    left = [i for i, name, _ in _squeue() if name.startswith(prefix + "_")]
    if left:
        subprocess.run(["scancel", *left], check=False)
        say(f"cancelled {len(left)} job(s) the previous controller left running: {' '.join(left)}")
    subprocess.run(snakemake_command(config, profile, prefix, ["--unlock"]), check=True, capture_output=True)
    say("unlocked the directory: the previous controller ended without releasing Snakemake's lock")


def run_controller(config: Path, profile: Path, extra: list[str], progress_line, every_s: float = 60.0) -> int:
    """The controller job's body: recover a stale lock, run Snakemake, log the progress line
    when it changes; SIGINT/SIGTERM reach Snakemake as Ctrl-C (it cancels its jobs)."""
    def say(msg):
        print(f"[contrastlab controller {time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)

    prefix = job_prefix(Path.cwd())
    recover_lock(config, profile, prefix, say)
    cmd = snakemake_command(config, profile, prefix, extra)
    # the SLURM executor plugin would clear the controller job's SLURM_* variables itself (so that its
    # sbatch calls do not inherit this job's settings), with a warning meant for a job run by mistake
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.Popen(cmd, env=env)
    say(f"snakemake (pid {proc.pid}): " + shlex.join(cmd))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, lambda *_: proc.send_signal(signal.SIGINT))
    last = None
    while True:
        try:
            code = proc.wait(every_s)
            break
        except subprocess.TimeoutExpired:
            pass
        last = _report(progress_line, last, say)
    _report(progress_line, last, say)
    say(f"snakemake exited with {code}" + ("" if code == 0 else "; `contrastlab submit` again continues the study"))
    return code


def _report(progress_line, last, say):
    try:
        line = progress_line()
    except Exception as e:  # noqa: BLE001 - a progress line never stops the controller
        line = f"progress unknown: {type(e).__name__}: {e}"
    if line != last:
        say(line)
    return line
