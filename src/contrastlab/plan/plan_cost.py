"""What a study costs in device-hours before it runs (`contrastlab plan`), and the GPU figures of
the paper preset's FLOP estimate (benchmarks/paper_cost.py imports them from here).

A run (cell x seed) costs steps x step time + its jobs' start-up (train, and embed when the
probe is on). The step time is measured: by a pilot on this device (contrastlab.plan.pilot, the
baseline's step, applied to every cell), or per cell from an earlier study's metrics.json
(step_time_s) with the start-up from its Snakemake benchmark files (job wall time less training
time). For the paper preset, whose GPU is not here, a run's cost is its counted FLOPs
(benchmarks/results/paper_cost.json) at the first of RATES, plus JOB_START_S per GPU job.
Evaluation passes are inside the measured job time of an earlier study, not in a pilot's.
"""
from __future__ import annotations

import glob
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from contrastlab.plan import layout
from contrastlab.plan.budget import _source_rows, steps_at_most, train_rows_at_most

H200_BF16_PEAK = 790e12  # torch.mm 8192^3 bf16 measured on this workplace's H200 (769-798 TFLOP/s)
RATES = {"issue 22's measured baseline step (7% of peak)": 58e12, "the goal: 25% of peak": 0.25 * H200_BF16_PEAK}
JOB_START_S = 15.0  # a GPU job's start-up before its first step (issue 22: 20-30 s jobs with 6-14 s of training)
# the paper preset's counts per cell x seed (IMDB: 25,000 train reviews less 20% validation)
EPOCHS, N_TRAIN, N_VAL, N_TEST, N_EMBED = 3, 20_000, 5_000, 25_000, 5_000


def kind(c) -> tuple:
    """What sets a cell's FLOPs per example (a CellConfig): family, max_len, LoRA, stages, views,
    level, projection, and a matched budget's step scale; sweeps over alpha, k, tau or layer sets
    change them by under a percent."""
    loss = c.loss
    return (c.family, c.model.max_len, c.model.lora is not None, loss.get("stages"), loss.get("views"),
            loss.get("level"), bool(loss.get("proj_dim")), c.train.steps_scale)


def cell_steps(cfg) -> int | None:
    """A cell's optimizer steps (contrastlab.plan.budget's bound: max_steps, or epochs x steps over
    the capped train rows); None where the data must be read to know."""
    rows = train_rows_at_most(cfg.data)
    return steps_at_most(cfg, rows) or steps_at_most(cfg, train_rows_at_most(cfg.data, _source_rows(cfg.data)))


@dataclass(frozen=True)
class RunCost:
    seconds: float  # one run (cell x seed), start-up included
    how: str  # in words


def pilot_costs(cells: dict, step_s: float, jobs: int, start_s: float = JOB_START_S) -> dict[str, RunCost]:
    """{cell: RunCost} from one measured step time (cells: name -> CellConfig)."""
    out = {}
    for name, cfg in cells.items():
        steps = cell_steps(cfg)
        if steps is None:
            out[name] = RunCost(float("nan"), "steps unknown (the train rows of a hub dataset)")
        else:
            out[name] = RunCost(steps * step_s + jobs * start_s,
                                f"{steps} steps x {step_s:.3f} s + {jobs} x {start_s:.0f} s")
    return out


def earlier_costs(results: str, cells: dict, jobs: int) -> dict[str, RunCost]:
    """{cell: RunCost} from an earlier study's measured step times (its cells' metrics.json) and
    job start-up (its benchmark files); a cell it lacks takes the median step time. {} when it
    has no metrics."""
    step, starts = {}, []
    for name in cells:
        times = []
        for path in glob.glob(layout.stage_files(results, "train", name, "*")["metrics"]):
            m = json.loads(Path(path).read_text())
            if m.get("step_time_s"):
                times.append(m["step_time_s"])
            seed = m.get("seed")
            bench = Path(layout.benchmark_file(results, "train", name, seed))
            if bench.exists() and m.get("train_time_s") is not None:
                wall = float(bench.read_text().splitlines()[1].split("\t")[0])
                starts.append(max(wall - m["train_time_s"], 0.0))
        if times:
            step[name] = statistics.median(times)
    if not step:
        return {}
    start = statistics.median(starts) if starts else JOB_START_S
    fallback = statistics.median(step.values())
    out = {}
    for name, cfg in cells.items():
        s = step.get(name, fallback)
        steps = cell_steps(cfg)
        said = "measured" if name in step else "median of the measured cells"
        out[name] = (RunCost(steps * s + jobs * start, f"{steps} steps x {s:.3f} s ({said}) + {jobs} x {start:.0f} s")
                     if steps is not None else RunCost(float("nan"), "steps unknown"))
    return out


def flop_costs(path: str | Path, cells: dict) -> dict[str, RunCost]:
    """{cell: RunCost} from counted FLOPs per run (benchmarks/paper_cost.py's JSON) at the first
    of RATES, plus JOB_START_S per GPU job (train, embed)."""
    r = json.loads(Path(path).read_text())
    rate_name, rate = next(iter(RATES.items()))
    per_cell = {c: row["flop_per_run"] for row in r["rows"] for c in row["cells"]}
    out = {}
    for name in cells:
        if name not in per_cell:
            out[name] = RunCost(float("nan"), f"not in {path}")
        else:
            f = per_cell[name]
            out[name] = RunCost(f / rate + 2 * JOB_START_S, f"{f / 1e15:.0f} PFLOP at {rate / 1e12:.0f} TFLOP/s "
                                f"({rate_name}) + 2 x {JOB_START_S:.0f} s")
    return out


def test_examples_of_flops(path: str | Path) -> int:
    return int(json.loads(Path(path).read_text())["counts"]["test"])
