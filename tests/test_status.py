"""The status table from hand-written attempt records and logs, with no workflow run: a done cell,
one whose attempt ended in a failure, one still running, and one killed by SLURM's time limit
before it could say so."""
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from contrastlab.plan import layout
from contrastlab.operations.io import write_json
from contrastlab.operations.status import write_status_table
from contrastlab.plan.study import plan

CELLS = ("done", "failed", "running", "killed")


def attempt(cause=None, message=""):
    """One attempt as contrastlab.operations.jobs records it: ended (with its cause) or not."""
    record = {"attempt": 1, "started": time.time() - 60, "host": "node1", "run": "r1", "slurm_job": "42"}
    return record if cause is None else {**record, "cause": cause, "message": message, "ended": time.time()}


@pytest.fixture
def study(tmp_path):
    """A study of four baseline cells, its data prepared, and no stage run yet."""
    config = {"results": str(tmp_path / "results"), "data": {"source": "embedded"}, "model": {"name": "embedded", "max_len": 32},
              "seeds": [1], "baseline": "done", "experiments": {name: {"family": "baseline"} for name in CELLS}}
    p = plan(config, "study.yaml")
    R = p.study.results
    for key in p.preps:
        Path(layout.prepared_dir(R, key)).mkdir(parents=True)
    return p, R


def record(R, stage, cell, *attempts):
    write_json(Path(layout.attempts_file(R, stage, layout.job_key(cell, 1))), {"fingerprint": "", "attempts": list(attempts)})


def write_log(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def test_the_status_of_a_done_a_failed_a_running_and_a_killed_attempt(study):
    p, R = study
    for stage in ("train", "embed", "probe", "plot"):
        for f in layout.stage_files(R, stage, "done", 1).values():
            write_log(f, "")
        record(R, stage, "done", attempt("done"))
    record(R, "train", "failed", attempt("non_finite", "the loss is nan at step 3"))
    write_log(layout.log_file(R, "train", "failed", 1), "INFO step 2\nERROR FAILED [non_finite] the loss is nan at step 3\n")
    record(R, "train", "running", attempt())
    write_log(layout.log_file(R, "train", "running", 1), "INFO epoch 1 step 2/14 loss 0.69\n")
    record(R, "train", "killed", attempt())
    write_log(layout.log_file(R, "train", "killed", 1), "INFO epoch 1 step 2/14 loss 0.69\n")
    write_log(Path(layout.slurm_log_dir(R)) / "rule_train" / "killed_1" / "42.log",
              "slurmstepd: error: *** JOB 42 ON node1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***\n")

    write_status_table(p, R)
    status = pd.read_csv(layout.status_paths(R)["csv"], keep_default_na=False).set_index("cell")
    got = {c: tuple(status.loc[c, ["state", "stage", "cause"]]) for c in CELLS}
    assert got == {"done": ("done", "", ""),
                   "failed": ("failed", "train", "non-finite loss"),
                   "running": ("running or killed", "train", "killed without an error (out of memory or a time limit?)"),
                   "killed": ("failed", "train", "time limit")}
    assert status.loc["failed", "last_error"] == "the loss is nan at step 3"
    assert status.loc["failed", "log"] == layout.log_file(R, "train", "failed", 1)
    assert "4 cell x seed runs: 1 done, 2 failed, 1 running or killed, 0 not run" in \
        Path(layout.status_paths(R)["md"]).read_text()


def test_a_cell_with_no_attempt_is_not_run_at_its_first_stage(study):
    p, R = study
    write_status_table(p, R)
    status = pd.read_csv(layout.status_paths(R)["csv"], keep_default_na=False)
    assert set(zip(status["state"], status["stage"])) == {("not run", "train")}


def test_the_slurm_profile_writes_its_logs_where_the_status_reads_them():
    profile = yaml.safe_load((Path(__file__).resolve().parent.parent / "profiles/slurm/config.yaml").read_text())
    assert profile["slurm-logdir"] == layout.slurm_log_dir("results")  # the default results folder
