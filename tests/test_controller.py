"""`contrastlab submit` without a cluster: what it asks SLURM for, and its one-line refusals.
The controller on a real SLURM: tests/test_submit.py."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from contrastlab.cli import main
from contrastlab.operations.controller import job_prefix, sbatch_command
from workflow_helpers import REPO

PROFILE = REPO / "profiles" / "slurm"


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_the_controller_job_asks_for_one_cpu_its_time_and_the_profiles_partition_and_account(tmp_path):
    cmd = sbatch_command(tmp_path / "my.yaml", PROFILE, tmp_path, "results/my_study", 120, ["--jobs", "8"])
    defaults = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]
    assert option(cmd, "--cpus-per-task") == "1" and option(cmd, "--time") == "120"
    assert option(cmd, "--partition") == defaults["slurm_partition"]
    assert option(cmd, "--account") == defaults["slurm_account"]
    assert option(cmd, "--output") == f"{tmp_path}/results/my_study/logs/controller/%j.log"
    assert option(cmd, "--job-name") == job_prefix(tmp_path) and option(cmd, "--chdir") == str(tmp_path)
    assert "--signal=B:INT@300" in cmd  # Ctrl-C for Snakemake 5 min before the limit
    wrap = option(cmd, "--wrap")
    assert wrap.startswith("exec ") and "contrastlab.cli controller" in wrap and wrap.endswith("-- --jobs 8")
    short = sbatch_command(tmp_path / "my.yaml", PROFILE, tmp_path, "results", 10, [])
    assert "--signal=B:INT@150" in short  # a quarter of a short limit, not all of it


def test_one_controller_name_per_directory():
    assert job_prefix("/a/b") == job_prefix("/a/b/../b") != job_prefix("/a/c")
    assert len(job_prefix("/a/b")) <= 50  # the plugin's limit for --slurm-jobname-prefix


def test_submit_without_slurm_or_with_a_profile_that_is_not_one_says_so_in_a_line(tmp_path, tiny_deberta_dir,
                                                                                  capsys, monkeypatch):
    cfg = yaml.safe_load((REPO / "tests/configs/slurm_tiny.yaml").read_text())
    cfg["model"]["name"] = str(tiny_deberta_dir)
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(["submit", "my.yaml", "--profile", "profiles/nowhere"]) == 1
    # only the command's own lines: a logging handler an earlier test left on its closed capture may add noise
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("submit:")]
    assert err == [f"submit: --profile {tmp_path}/profiles/nowhere: no config.yaml there (e.g. profiles/slurm)"]
    monkeypatch.setenv("PATH", str(Path(os.__file__).parent))  # no SLURM client tools
    assert main(["submit", "my.yaml", "--profile", str(PROFILE)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("submit:")]
    assert len(err) == 1 and err[0].startswith("submit: squeue is not on PATH")
