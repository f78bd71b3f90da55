"""The status of a study: every cell x seed, done, failed (and why) or not run.

`results/status.md` and `status.csv`: one row per cell x seed with its state (done, failed, not
run, or running or killed: started and not ended, with no cause found in its logs), the stage that
failed, the cause (contrastlab.operations.failures: GPU or CPU out of memory, time limit, preempted,
non-finite loss, bad data, bad config, killed, other), the attempts, the log and its last error
line. Written when a run ends, whether it succeeded or not (the Snakefile's onsuccess/onerror),
and by `contrastlab status`. It reads the jobs' attempt records (contrastlab.operations.jobs) and logs, so
it works however far the run got.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from contrastlab.plan import layout
from contrastlab.operations.failures import CAUSES, classify_log, last_error_line
from contrastlab.operations.io import atomic_path, read_json, write_text
from contrastlab.operations.progress import progress

STAGES = ("prepare", "train", "embed", "probe", "plot")
COLUMNS = ["cell", "seed", "state", "stage", "cause", "attempts", "first_cause", "micro_batch", "log", "last_error"]


def _attempts(path: Path) -> list[dict]:
    try:
        return read_json(path).get("attempts", []) if path.is_file() else []
    except ValueError:
        return []


def _slurm_log_text(results: str, stage: str, cell: str, seed: int) -> str:
    """What SLURM said of the job (OUT_OF_MEMORY, TIME LIMIT), from the profile's per-job logs."""
    root = Path(layout.slurm_log_dir(results))
    texts = [p.read_text(errors="replace") for p in root.glob(f"rule_{stage}/{cell}_{seed}/*.log")] if root.is_dir() else []
    texts += [p.read_text(errors="replace") for p in root.glob(f"group_*/**/*{cell}*{seed}*.log")] if root.is_dir() else []
    return "\n".join(texts)


def cell_status(plan, results: str, cell, stages) -> dict:
    row = {"cell": cell.name, "seed": cell.seed, "state": "not run", "stage": "", "cause": "", "attempts": 0,
           "first_cause": "", "micro_batch": "", "log": "", "last_error": ""}
    done = all(Path(p).exists() for s in stages if s != "prepare"
               for p in layout.stage_files(results, s, cell.name, cell.seed).values())
    train_attempts = _attempts(Path(layout.attempts_file(results, "train", layout.job_key(cell.name, cell.seed))))
    row["attempts"] = len(train_attempts)
    failures = [a for a in train_attempts if a.get("cause") not in (None, "done")]
    row["first_cause"] = CAUSES.get(failures[0]["cause"], "") if failures else ""
    metrics = Path(layout.stage_files(results, "train", cell.name, cell.seed)["metrics"])
    try:
        row["micro_batch"] = read_json(metrics).get("micro_batch", "") if metrics.exists() else ""
    except ValueError:  # not written by a training job (e.g. snakemake --touch): say nothing of it
        pass
    if done:
        row["state"] = "done"
        return row
    prep = plan.prep_of[(cell.name, cell.seed)]
    for stage in stages:
        job = prep if stage == "prepare" else layout.job_key(cell.name, cell.seed)
        attempts = _attempts(Path(layout.attempts_file(results, stage, job)))
        log = Path(layout.job_log(results, stage, job))
        outputs = ([layout.prepared_dir(results, prep)] if stage == "prepare" else
                   list(layout.stage_files(results, stage, cell.name, cell.seed).values()))
        if all(Path(p).exists() for p in outputs):
            continue
        last = attempts[-1] if attempts else None
        if last is None:
            row["stage"] = stage  # the next stage to run: the cell is not run (yet) beyond it
            return row
        text = log.read_text(errors="replace") if log.exists() else ""
        cause, state = last.get("cause"), "failed"
        if cause is None:  # started and never ended: killed from outside, or still running
            cause = classify_log(_slurm_log_text(results, stage, cell.name, cell.seed) + text) or "killed"
            state = "failed" if cause != "killed" else "running or killed"
        row.update(state=state, stage=stage, cause=CAUSES.get(cause, cause), log=str(log),
                   last_error=(last.get("message") or last_error_line(text))[:300])
        return row
    return row


def status_rows(plan, results: str) -> list[dict]:
    stages = STAGES if plan.study.probe.enabled else ("prepare", "train")
    return [cell_status(plan, results, c, stages) for c in plan.cells]


def sequential_section(plan, results: str) -> list[str]:
    """A sequential study's comparisons: the seeds each took and why it stopped (from the
    aggregate's sequential.csv, contrastlab.analysis.sequential); nothing before its first aggregate."""
    path = Path(layout.sequential_table(results))
    if plan.study.schedule is None or not path.is_file():
        return []
    with path.open() as f:
        looks = list(csv.DictReader(f))
    open_ = sum(r["stopped"] == "open" for r in looks)
    lines = ["", "## Seeds added until decided", "",
             f"{len(looks) - open_} of {len(looks)} comparisons stopped" +
             (f"; {open_} open: `contrastlab run {plan.source}` adds their seeds" if open_ else "") + ".", "",
             "| comparison | seeds | looks | decision | why it stopped |", "|---|---|---|---|---|"]
    lines += [f"| {r['cell']} vs {r['reference']} | {r['seeds']} | {r['looks']} | {r['decision']} | "
              f"{r['why'].replace('|', '/')} |" for r in looks]
    return lines


def write_status_table(plan, results: str) -> list[dict]:
    rows = status_rows(plan, results)
    paths = layout.status_paths(results)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    with atomic_path(paths["csv"]) as tmp:
        tmp.write_text(buf.getvalue())
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "failed", "not run", "running or killed")}
    running = f", {counts['running or killed']} running or killed" if counts["running or killed"] else ""
    lines = [f"# Status of {plan.source}", "",
             f"{len(rows)} cell x seed runs: {counts['done']} done, {counts['failed']} failed{running}, "
             f"{counts['not run']} not run. "
             "Rerun only what failed or was never run with the same snakemake command: finished cells are not redone.",
             "", f"Progress: {progress(rows, results).line()}",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in COLUMNS) + " |")
    lines += sequential_section(plan, results)
    write_text(paths["md"], "\n".join(lines) + "\n")
    return rows
