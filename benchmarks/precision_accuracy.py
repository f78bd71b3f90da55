"""Is accuracy kept in bf16? Each cell trained in bf16 and in fp32, the same otherwise, tested on
the same examples.

    python benchmarks/precision_accuracy.py [--quick] [--cells baseline scl_viewsone ...]

Cells: the baseline and one cell of each family of the full grid (config/grid.yaml), with the LoRA
baseline that the token and cluster cells are compared with. Each is trained by
`contrastlab.training.train.train` on the default study's prepared data, twice: train.precision fp32 and
bf16, with the same seed, data and config otherwise (the default study's recipe: 2 epochs of
config.yaml's batch). Per cell: test accuracy in both, the difference Δ = bf16 − fp32 with its
paired t 95% interval over the test examples (contrastlab.analysis.stats.paired_difference on the
per-example correctness of predictions.csv) and McNemar's p (contrastlab.analysis.stats.mcnemar).
Verdict per cell: "within" when the interval includes 0 or bf16 is better, else "bf16 worse
beyond its 95% interval". Goal: no cell worse beyond its interval.

One seed per arm: the interval covers the test-set sampling only, not the seed-to-seed spread of
training, which the study itself measures with several seeds. The two arms' training times are
given from `train`'s own metrics (samples/s of its optimizer steps); they ran one after the other,
not interleaved, so read precision_speed.py for the speed ratio.

--quick: two cells, 128 training examples, 4 optimizer steps (a smoke test of the code).
A full run trains 18 cells x 2 epochs: about 15-20 minutes on 2 cores.

Writes benchmarks/results/precision_accuracy.json.
"""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

from _common import arguments, cell_paths, default_cell, default_runtime, family_cells, prepared_default, write_result

import numpy as np
import torch

from contrastlab.analysis.stats import mcnemar, paired_difference
from contrastlab.training.train import train



def correctness(path: str) -> np.ndarray:
    """Per test example (in index order): 1 when predicted right (predictions.csv)."""
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    return np.asarray([int(r["correct"]) for r in rows], dtype=bool)


def verdict(diff: float, lo: float, hi: float) -> str:
    if lo <= 0 <= hi:
        return "within"
    return "within (bf16 better)" if lo > 0 else "bf16 worse beyond its 95% interval"


def main() -> None:
    ap = arguments(__doc__, "2 cells, 128 examples, 4 steps: a smoke test")
    ap.add_argument("--cells", nargs="*", default=None, help=f"cells of config/grid.yaml (default: {' '.join(family_cells())})")
    ap.add_argument("--max-steps", type=int, default=None, help="train.max_steps (default: the config's epochs)")
    args = ap.parse_args()
    cells = args.cells or (["baseline", "scl_viewsone"] if args.quick else family_cells())
    if args.quick:
        args.max_steps = args.max_steps or 4
        prepared = prepared_default(max_train=128, max_eval=128)
    else:
        prepared = prepared_default()
    runtime = default_runtime(log_every=10_000)
    torch.set_num_threads(runtime.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in cells:
            arms = {}
            for precision in ("fp32", "bf16"):
                overrides = {"train.precision": precision}
                if args.max_steps:
                    overrides["train.max_steps"] = args.max_steps
                cfg = default_cell(cell, **overrides)
                out, state = cell_paths(Path(tmp) / precision, cell, cfg.seed)
                t = time.perf_counter()
                metrics = train(cfg, runtime, prepared, out, state)
                arms[precision] = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                                   "steps": metrics["steps"], "samples_per_s": metrics["samples_per_s"],
                                   "train_time_s": metrics["train_time_s"], "job_s": time.perf_counter() - t,
                                   "collapsed": metrics.get("collapsed"), "correct": correctness(out["predictions"])}
            a, b = arms["fp32"].pop("correct"), arms["bf16"].pop("correct")
            boot = paired_difference(a, b)  # diff = b - a = bf16 - fp32, paired t over the test examples
            mc = mcnemar(a, b)
            row = {"cell": cell, "family": cfg.family, "n_test": int(len(a)), "fp32": arms["fp32"], "bf16": arms["bf16"],
                   "diff": boot["diff"], "lo": boot["lo"], "hi": boot["hi"], "se": boot["se"],
                   "paired_p": boot["p"], "mcnemar_p": mc["p"], "mcnemar": mc,
                   "verdict": verdict(boot["diff"], boot["lo"], boot["hi"])}
            rows.append(row)
            print(f"{cell:<42} fp32 {arms['fp32']['accuracy']:.4f}  bf16 {arms['bf16']['accuracy']:.4f}  "
                  f"Δ {row['diff']:+.4f} [{row['lo']:+.4f}, {row['hi']:+.4f}]  McNemar p {row['mcnemar_p']:.3f}  "
                  f"-> {row['verdict']}  (samples/s fp32 {arms['fp32']['samples_per_s']:.1f}, "
                  f"bf16 {arms['bf16']['samples_per_s']:.1f})", flush=True)
    worse = [r["cell"] for r in rows if r["verdict"].startswith("bf16 worse")]
    cfg0 = default_cell("baseline")
    write_result("precision_accuracy", {
        "quick": args.quick, "cells": rows, "max_steps": args.max_steps,
        "epochs": cfg0.train.epochs, "batch_size": cfg0.train.batch_size, "grad_accum": cfg0.train.grad_accum,
        "seed": cfg0.seed, "threads": runtime.threads, "worse": worse, "met": not worse}, args.out)
    print(f"cells worse in bf16 beyond their 95% interval: {worse or 'none'} -> {'MET' if not worse else 'MISSED'}")


if __name__ == "__main__":
    main()
