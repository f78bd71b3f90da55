"""Training samples/s in bf16 against fp32, for the baseline and one cell of every family.

    python benchmarks/precision_speed.py [--quick] [--cells baseline scl_viewsone ...]
                                         [--repeats R] [--steps S] [--splits 32x1 ...] [--no-avx2-row]

Workload: the grid's cells (config/grid.yaml: embedded MiniLM-L6, max_len 64, its batch of
32 examples per optimizer step) on the default prepared data, each run by contrastlab.training.train's
own `Trainer` (`Trainer(cfg, runtime, data, device, total_steps).step(idx, epoch, step)`: collate,
autocast, forward, backward, clipping, AdamW, scheduler: what `train` runs per step). For each
cell four contenders are built: fp32 and bf16 (train.precision), each with the step's 32 examples
as batch_size 16 x grad_accum 2 and as 32 x 1; nothing else differs (same seed, same init, same
threads: runtime.threads).

Timing: the real optimizer steps of epoch 0 (contrastlab.training.batching.epoch_steps: length-grouped,
seeded); a round gives every contender the SAME S steps (same examples, same shapes), in a
rotated order, after one warm-up step each; R rounds; samples/s of a contender = the examples of a
round over its median round time. Cells are measured one after the other (four models in memory
at a time); every ratio is within one cell's interleaved rounds.

Before the first cell, one throwaway round over the same steps fills oneDNN's per-shape kernel
caches (else the first cell measured pays for building them).

Ratios: bf16 over fp32 at the same split (goal >= GOAL for the baseline), and the new default
(bf16 at config.yaml's split) over the old one (fp32, 16 x 2).

The AVX2-only row: on a CPU with native bf16, the baseline is measured once more in a subprocess
whose oneDNN is capped at AVX2 (contrastlab.training.native.AVX2_ONLY: ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2), which turns oneDNN's bf16 kernels off: bf16
then runs torch's scalar fallback, as on a CPU without avx512_bf16 or AMX; 32 x 1, 2 rounds of 1
step (an emulated bf16 step takes seconds). On a CPU without native bf16 the main run is that row
itself (the baseline, 32 x 1, 2 rounds of 1 step), since train.precision: auto picks fp32 there.
bf16 contenders run with runtime.allow_slow_precision (measuring the emulation is the point).

Writes benchmarks/results/precision_speed.json.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import tempfile
import statistics
import sys
import time
from pathlib import Path

from _common import (arguments, cpu_bf16, default_cell, grid_config, default_runtime, family_cells,
                     prepared_default, split_of, write_result)

import torch

from contrastlab.training.batching import epoch_steps
from contrastlab.training.native import AVX2_ONLY
from contrastlab.data.prepared import load_prepared
from contrastlab.training.train import Trainer

GOAL = 1.8  # bf16 over fp32, baseline (issue #11)
SPLITS = [(16, 2), (32, 1)]
PRECISIONS = ["fp32", "bf16"]


def label(precision: str, split: tuple[int, int]) -> str:
    return f"{precision} {split[0]}x{split[1]}"


def measure_cell(cell: str, data, runtime, steps, n_steps: int, repeats: int, splits=SPLITS) -> dict:
    """The contenders (precision x split) of one cell, interleaved over `repeats` rounds of `n_steps` steps."""
    trainers = {}
    for precision in PRECISIONS:
        for b, a in splits:
            cfg = default_cell(cell, **{"train.precision": precision, "train.batch_size": b, "train.grad_accum": a})
            trainers[label(precision, (b, a))] = Trainer(cfg, runtime, data, torch.device("cpu"), len(steps))
    names = list(trainers)
    counter = {n: 0 for n in names}

    def run(name, idxs):
        for idx in idxs:
            counter[name] += 1
            trainers[name].step(idx, 0, counter[name])

    warm = steps[-1:]  # the warm-up step is not one of the timed ones
    for n in names:
        run(n, warm)
    times = {n: [] for n in names}
    samples = []
    for r in range(repeats):
        chunk = [steps[(r * n_steps + i) % (len(steps) - 1)] for i in range(n_steps)]
        samples.append(sum(len(i) for i in chunk))
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            run(n, chunk)
            times[n].append(time.perf_counter() - t)
    per_round = statistics.median(samples)
    rows = {}
    for n in names:
        rates = [s / t for s, t in zip(samples, times[n])]
        rows[n] = {"median_round_s": statistics.median(times[n]), "times_s": times[n],
                   "samples_per_s": statistics.median(rates), "samples_per_round": per_round}
    del trainers
    gc.collect()
    return rows


def main() -> None:
    ap = arguments(__doc__, "2 cells, 1 step x 2 rounds: a smoke test")
    ap.add_argument("--cells", nargs="*", default=None, help=f"cells of config/grid.yaml (default: {' '.join(family_cells())})")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per cell")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per contender and round")
    ap.add_argument("--splits", nargs="*", default=None, help="micro-batch x accumulation (default: 16x2 32x1)")
    ap.add_argument("--no-avx2-row", action="store_true", help="skip the AVX2-only row (see above)")
    args = ap.parse_args()
    bf16 = cpu_bf16()
    cells = args.cells or family_cells()
    splits = [split_of(x) for x in args.splits] if args.splits else SPLITS
    if args.quick:
        cells, args.repeats, args.steps = args.cells or ["baseline", "scl_viewsone"], 2, 1
    if not bf16["native"] and not args.cells:  # emulated bf16: only the baseline, briefly (see above)
        cells, args.repeats, args.steps, splits = ["baseline"], 2, 1, [(32, 1)]
    runtime = default_runtime(allow_slow_precision=True)
    torch.set_num_threads(runtime.threads)
    data = load_prepared(prepared_default())
    effective = default_cell("baseline").train
    step_size = effective.batch_size * effective.grad_accum
    steps = epoch_steps([len(s) for s in data.splits["train"].ids], step_size, default_cell("baseline").seed, 0)
    # oneDNN builds a kernel per matrix shape and dtype on first use: without a pass that fills
    # those caches, the first cell measured pays for every shape (its bf16 ran 1.57x fp32 where
    # measured first and 2.19x where measured second). Its result is thrown away.
    measure_cell(cells[0], data, runtime, steps, args.steps, 1, splits)
    results = []
    for cell in cells:
        t = time.perf_counter()
        rows = measure_cell(cell, data, runtime, steps, args.steps, args.repeats, splits)
        ratios = {f"{b}x{a}": rows[label("bf16", (b, a))]["samples_per_s"] / rows[label("fp32", (b, a))]["samples_per_s"]
                  for b, a in splits}
        default_split = (effective.batch_size, effective.grad_accum)
        new_over_old = (rows[label("bf16", default_split)]["samples_per_s"] / rows[label("fp32", (16, 2))]["samples_per_s"]
                        if {default_split, (16, 2)} <= set(splits) else None)
        family = default_cell(cell).family
        results.append({"cell": cell, "family": family, "contenders": rows, "bf16_over_fp32": ratios,
                        "new_default_over_old": new_over_old, "wall_s": time.perf_counter() - t})
        print(f"{cell:<42}" + "".join(f"{n}: {r['samples_per_s']:6.1f}/s  " for n, r in rows.items())
              + " bf16/fp32 " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
              + (f"; bf16 {default_split[0]}x{default_split[1]} / fp32 16x2 {new_over_old:.2f}x" if new_over_old else ""),
              flush=True)
    base = next((r for r in results if r["cell"] == "baseline"), None)
    goals = []
    if base is not None and bf16["native"]:  # the goal is for a CPU with native bf16
        for split, ratio in base["bf16_over_fp32"].items():
            goals.append({"what": f"baseline bf16 over fp32, {split}", "goal": GOAL, "ratio": ratio, "met": ratio >= GOAL})
    default_split = f"{effective.batch_size}x{effective.grad_accum}"
    write_result("precision_speed", {
        "quick": args.quick, "repeats": args.repeats, "steps_per_round": args.steps, "step_size": step_size,
        "default_split": default_split, "default_precision": effective.precision,
        "max_len": grid_config()["model"]["max_len"], "threads": torch.get_num_threads(),
        "splits": [f"{b}x{a}" for b, a in splits], "goal": GOAL, "cells": results, "goals": goals,
        "met": all(g["met"] for g in goals) if goals else None, "bf16": bf16,
        "avx2_only": None if args.no_avx2_row or not bf16["native"] else avx2_row()}, args.out)


def avx2_row() -> dict:
    """The baseline's row measured in a subprocess with oneDNN capped at AVX2 (see above)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "avx2.json"
        subprocess.run([sys.executable, __file__, "--cells", "baseline", "--splits", "32x1", "--repeats", "2",
                        "--steps", "1", "--no-avx2-row", "--out", str(out)], env={**os.environ, **AVX2_ONLY},
                       check=True, timeout=900)
        r = json.loads(out.read_text())
    return {"env": AVX2_ONLY, "bf16": r["bf16"], "repeats": r["repeats"], "steps_per_round": r["steps_per_round"],
            "cell": r["cells"][0]}


if __name__ == "__main__":
    main()
