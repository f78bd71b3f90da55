"""A study's progress in one line, with an estimate of the time left:

    37/102 runs done, 2 running or killed, 1 failed, 62 pending; ETA 3 h 10 min at the measured 41 s/run, 2 at a time

From the status rows (contrastlab.operations.status: a run is one cell x seed) and what the finished runs
measured: a run's time is the wall time of its jobs in Snakemake's benchmark files (train,
embed, probe, plot: contrastlab.plan.layout.benchmark_file), or, while no finished run has those,
the sum of its optimizer steps' times in history.csv (the line then says "s/run in optimizer
steps"). The time left is that mean over the finished runs times the runs still to go, less what
each running one has already spent (from its attempt record), divided by how many run at once
now (at least one). Failed runs are not counted: they
rerun only when the study is run again. `contrastlab status` and the controller's log
(contrastlab.operations.controller) print it.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from contrastlab.plan import layout
from contrastlab.operations.io import read_json

RUN_STAGES = ("train", "embed", "probe", "plot")
RUNNING = "running or killed"


@dataclass
class Progress:
    total: int
    done: int
    running: int
    failed: int
    pending: int
    per_run_s: float | None  # measured mean wall time of a finished run
    eta_s: float | None
    unit: str = "s/run"  # what per_run_s measures: jobs' wall time, or only the optimizer steps'

    def line(self) -> str:
        parts = [f"{self.done}/{self.total} runs done"]
        parts += [f"{n} {word}" for n, word in ((self.running, RUNNING), (self.failed, "failed"),
                                                (self.pending, "pending")) if n]
        head = ", ".join(parts)
        if self.done == self.total:
            return head
        if self.per_run_s is None:
            return f"{head}; ETA when a run has finished"
        at_once = f", {self.running} at a time" if self.running > 1 else ""
        return f"{head}; ETA {duration(self.eta_s)} at the measured {self.per_run_s:.0f} {self.unit}{at_once}"


def duration(seconds: float) -> str:
    """3 h 10 min, 12 min, 40 s."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def benchmark_seconds(results: str, cell: str, seed) -> float | None:
    """Wall time of a finished run's jobs, from their benchmark files (None if it has none)."""
    times = []
    for stage in RUN_STAGES:
        path = Path(layout.benchmark_file(results, stage, cell, seed))
        rows = list(csv.DictReader(path.open(), delimiter="\t")) if path.is_file() else []
        if rows and rows[-1].get("s"):
            times.append(float(rows[-1]["s"]))
    return sum(times) if times else None


def history_seconds(results: str, cell: str, seed) -> float | None:
    """The sum of a finished run's optimizer step times (training only: a lower bound)."""
    history = Path(layout.stage_files(results, "train", cell, seed)["history"])
    steps = [float(r["time_s"]) for r in csv.DictReader(history.open()) if r.get("time_s")] if history.is_file() else []
    return sum(steps) if steps else None


def measured_run_seconds(results: str, done: list[tuple[str, int]]) -> tuple[float | None, str]:
    """(mean time of the finished runs, what it measures): their jobs' wall time from the benchmark
    files where any run has them (a run whose file Snakemake has not written yet is left out),
    else their optimizer steps' time."""
    for measure, unit in ((benchmark_seconds, "s/run"), (history_seconds, "s/run in optimizer steps")):
        times = [t for cell, seed in done for t in [measure(results, cell, seed)] if t is not None]
        if times:
            return sum(times) / len(times), unit
    return None, "s/run"


def _started(results: str, cell: str, seed) -> float | None:
    """When the current attempt of a running run's earliest unfinished stage started."""
    for stage in RUN_STAGES:
        path = Path(layout.attempts_file(results, stage, f"{cell}/seed{seed}"))
        try:
            records = read_json(path).get("attempts", []) if path.is_file() else []
        except ValueError:
            continue
        if records and records[-1].get("cause") is None:
            return records[-1].get("started")
    return None


def progress(rows: list[dict], results: str, now: float | None = None) -> Progress:
    """The progress of a study from its status rows (contrastlab.operations.status.status_rows)."""
    now = time.time() if now is None else now
    count = {s: sum(r["state"] == s for r in rows) for s in ("done", RUNNING, "failed", "not run")}
    per_run, unit = measured_run_seconds(results, [(r["cell"], r["seed"]) for r in rows if r["state"] == "done"])
    eta = None
    if per_run is not None:
        left = count["not run"] * per_run
        for r in (r for r in rows if r["state"] == RUNNING):
            started = _started(results, r["cell"], r["seed"])
            left += max(0.0, per_run - (now - started)) if started else per_run
        eta = left / max(1, count[RUNNING])
    return Progress(total=len(rows), done=count["done"], running=count[RUNNING], failed=count["failed"],
                    pending=count["not run"], per_run_s=per_run, eta_s=eta, unit=unit)
