"""The study-level progress line (contrastlab.operations.progress) of a study stopped part-way: the outputs,
benchmark files and attempt records its jobs would have left, written by hand."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from contrastlab.plan import layout
from contrastlab.cli import main
from contrastlab.operations.io import write_json
from contrastlab.operations.progress import duration, progress
from contrastlab.operations.status import status_rows
from contrastlab.plan.study import plan
from workflow_helpers import REPO

NOW = 1_800_000_000.0
BENCH = {"train": 30.0, "embed": 5.0, "probe": 4.0, "plot": 2.0}  # 41 s a run


def write_bench(results, stage, cell, seed, seconds):
    path = layout.benchmark_file(results, stage, cell, seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["s", "h:m:s", "max_rss"])
        w.writerow([seconds, "0:00:30", 100])


def finish(results, cell, seed, scale=1.0):
    for stage in BENCH:
        for path in layout.stage_files(results, stage, cell, seed).values():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("{}")
        write_bench(results, stage, cell, seed, BENCH[stage] * scale)


def attempt(results, stage, cell, seed, started, cause=None):
    record = {"attempt": 1, "started": started, **({"cause": cause, "ended": started + 5} if cause else {})}
    write_json(layout.attempts_file(results, stage, f"{cell}/seed{seed}"), {"fingerprint": "", "attempts": [record]})


@pytest.fixture
def stopped_study(tiny_deberta_dir, tmp_path, monkeypatch):
    """6 runs (3 cells x 2 seeds): 3 done, 1 started 20 s ago, 1 failed, 1 never started."""
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((REPO / "tests/configs/e2e_tiny.yaml").read_text())
    cfg.update(results=str(tmp_path / "results"), seeds=[1, 2])
    cfg["model"]["name"] = str(tiny_deberta_dir)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    p = plan(cfg, "study.yaml")
    R = p.study.results
    for key in p.preps:
        (tmp_path / layout.prepared_dir(R, key)).mkdir(parents=True)
    runs = [(c.name, c.seed) for c in p.cells]
    for (cell, seed), scale in zip(runs[:3], (0.5, 1.0, 1.5)):  # 20.5, 41 and 61.5 s: 41 s on average
        finish(R, cell, seed, scale)
    attempt(R, "train", *runs[3], started=NOW - 20)
    attempt(R, "train", *runs[4], started=NOW - 100, cause="bad_data")
    return p, R


def test_progress_counts_each_state_and_estimates_from_the_measured_runs(stopped_study):
    p, R = stopped_study
    got = progress(status_rows(p, R), R, now=NOW)
    assert (got.total, got.done, got.running, got.failed, got.pending) == (6, 3, 1, 1, 1)
    assert got.per_run_s == pytest.approx(41.0)
    assert got.eta_s == pytest.approx(41.0 + (41.0 - 20.0))  # the pending run, and the rest of the running one
    assert got.line() == "3/6 runs done, 1 running or killed, 1 failed, 1 pending; ETA 1 min at the measured 41 s/run"


def test_without_benchmark_files_the_history_step_times_are_the_measure(stopped_study):
    p, R = stopped_study
    for c in p.cells:
        if Path(layout.benchmark_file(R, "train", c.name, c.seed)).exists():
            for stage in BENCH:
                Path(layout.benchmark_file(R, stage, c.name, c.seed)).unlink()
            Path(layout.stage_files(R, "train", c.name, c.seed)["history"]).write_text(
                "step,loss,time_s\n1,0.5,10.0\n2,0.4,14.0\n")
    got = progress(status_rows(p, R), R, now=NOW)
    assert got.per_run_s == pytest.approx(24.0) and got.line().endswith("at the measured 24 s/run in optimizer steps")


def test_a_study_not_started_has_no_eta_and_a_finished_one_no_eta_clause(stopped_study):
    p, R = stopped_study
    rows = status_rows(p, R)
    fresh = [dict(r, state="not run") for r in rows]
    assert progress(fresh, R + "_elsewhere").line() == "0/6 runs done, 6 pending; ETA when a run has finished"
    for c in p.cells:
        finish(R, c.name, c.seed)
    assert progress(status_rows(p, R), R).line() == "6/6 runs done"


def test_contrastlab_status_prints_the_progress_line(stopped_study, capsys):
    assert main(["status", "study.yaml"]) == 1  # a failed run
    out = capsys.readouterr().out
    assert "3/6 runs done, 1 running or killed, 1 failed, 1 pending; ETA" in out
    assert out.strip().splitlines()[-1].startswith("Progress: 3/6 runs done")


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (61, "1 min"), (11400, "3 h 10 min"), (-3, "0 s")])
def test_duration_in_words(seconds, text):
    assert duration(seconds) == text


def test_a_run_whose_benchmark_files_are_not_written_yet_is_left_out_of_the_measure(stopped_study):
    p, R = stopped_study
    first = p.cells[0]  # finished at 0.5 x 41 s; its history says 1 s
    for stage in BENCH:
        Path(layout.benchmark_file(R, stage, first.name, first.seed)).unlink()
    Path(layout.stage_files(R, "train", first.name, first.seed)["history"]).write_text("step,time_s\n1,1.0\n")
    assert progress(status_rows(p, R), R, now=NOW).per_run_s == pytest.approx((41.0 + 61.5) / 2)
