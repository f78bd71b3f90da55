"""A train or embed job's start-up: from process start to the end of its first forward pass,
of the working tree, beside the recorded figures of the code before the redesign (c540d97).

    python benchmarks/startup.py [--quick] [--repeats R]

Jobs: the train job of the default study's baseline cell and of its LoRA cell (peft), and the
embed job of the baseline cell. Each is its rule's own Snakemake script (workflow/scripts/
train.py, embed.py of the tree in question) run by benchmarks/_startup_driver.py with the params,
inputs and outputs its rule would give it (the driver stands in for Snakemake's script preamble,
which is the same either way), as the jobs get them (PYTHONPATH=src, config.yaml's cells:
including their train.precision). "before" is recorded data: the same jobs of commit c540d97,
measured from a worktree of it by the full run of commit 0e206d9
(benchmarks/results/before_c540d97.json names the machine); compare only on that machine.

Time: from just before the parent starts the process (time.time() before Popen) to the end of
the first forward of the encoder (the driver's global forward hook; the process then exits).
Split into: interpreter start, `import torch` (both adapters' first import), and the rest (the
job's own imports, config, data, tokenizer, model build, up to the first batch). Every round
runs every job once, in a rotated order; R rounds; median each. Also listed: which of a
few heavy packages (peft, sklearn, pandas, datasets, scipy, matplotlib, pyarrow, ...) are in
sys.modules at the first forward, and how many modules in all.

No goal is set by the issue for this figure: it is reported as before / after.
Writes benchmarks/results/startup.json.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (REPO, arguments, default_cell, grid_config, default_runtime, initial_weights,
                     prepared_default, recorded_before, write_result)

DRIVER = Path(__file__).resolve().parent / "_startup_driver.py"
WATCH = ["peft", "sklearn", "pandas", "datasets", "scipy", "matplotlib", "pyarrow", "accelerate", "safetensors",
         "transformers", "tokenizers", "pydantic", "yaml", "snakemake", "openTSNE"]
JOBS = {"train baseline": ("train", "baseline"), "train lora": ("train", "lora"), "embed baseline": ("embed", "baseline")}


def setup(tmp: Path) -> dict:
    """The default study's prepared data, a baseline cell's weights, and what the jobs get."""
    prepared = prepared_default()
    cells = {k: default_cell(k) for k in ("baseline", "lora")}
    weights = initial_weights(cells["baseline"], tmp / "weights.safetensors")
    probe = {k: v for k, v in (grid_config().get("probe") or {}).items() if k in ("split", "max_samples", "layers")}
    return {"prepared": prepared, "weights": weights, "probe": probe,
            "runtime": default_runtime().model_dump(), "cells": {k: c.model_dump() for k, c in cells.items()}}


def spec_of(s: dict, stage: str, cell: str, run_dir: Path) -> dict:
    """What the rule would hand its script (the snakemake object)."""
    from contrastlab.plan import layout

    cfg = s["cells"][cell]
    root, seed = str(run_dir / "results"), cfg["seed"]
    params = {"cell": cfg, "attempts": layout.attempts_file(root, stage, f"{cell}/seed{seed}")}
    inputs = {"prepared": str(s["prepared"])}
    if stage == "train":  # what workflow/rules/train.smk hands its script
        params["state"] = layout.train_state(root, cell, seed)
        params["run"] = {"results": root, "family": cfg["family"], "cell": cell, "seed": seed}
    else:
        params["probe"] = s["probe"]
        inputs["weights"] = str(s["weights"])
    return {"script": str(REPO / "workflow" / "scripts" / f"{stage}.py"), "result": str(run_dir / "startup.json"),
            "snakemake": {"params": params, "input": inputs, "output": layout.stage_files(root, stage, cell, seed),
                          "log": [str(run_dir / "job.log")], "threads": s["runtime"].get("threads", 2),
                          "config": {"runtime": s["runtime"]}}}


def run_one(s: dict, job: str, tmp: Path, k: int) -> dict:
    stage, cell = JOBS[job]
    run_dir = tmp / f"{stage}-{cell}-{k}"
    run_dir.mkdir(parents=True)
    spec = spec_of(s, stage, cell, run_dir)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CONTRASTLAB_RUN", None)
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(DRIVER), str(run_dir / "spec.json")], env=env, capture_output=True,
                          text=True, cwd=run_dir, timeout=300)
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        raise SystemExit(f"{job}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    r = json.loads(Path(spec["result"]).read_text())
    return {"total_s": r["t_first_forward"] - t0, "interpreter_s": r["t_start"] - t0,
            "torch_import_s": r["t_after_torch"] - r["t_start"], "rest_s": r["t_first_forward"] - r["t_after_torch"],
            "modules": r["modules"], "n_modules": r["n_modules"], "contrastlab": r["contrastlab"],
            "output_shape": r["output_shape"]}


def main() -> None:
    ap = arguments(__doc__, "one round: a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    before = recorded_before("startup")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s = setup(tmp)
        runs = {job: [] for job in JOBS}
        jobs, k = list(JOBS), 0
        for r in range(args.repeats):
            for job in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
                k += 1
                x = run_one(s, job, tmp, k)
                runs[job].append(x)
                print(f"  round {r + 1} {job:<15} {x['total_s']:6.2f} s (interpreter {x['interpreter_s']:.2f}, "
                      f"torch {x['torch_import_s']:.2f}, rest {x['rest_s']:.2f})", flush=True)
    rows = []
    for job, xs in runs.items():
        last = xs[-1]
        after = {"median_s": statistics.median(x["total_s"] for x in xs), "times_s": [x["total_s"] for x in xs],
                 **{part: statistics.median(x[part] for x in xs) for part in ("interpreter_s", "torch_import_s", "rest_s")},
                 "n_modules": last["n_modules"], "contrastlab": last["contrastlab"],
                 "imported": {m: m in last["modules"] for m in WATCH}, "output_shape": last["output_shape"]}
        b = before["jobs"][job]
        rows.append({"job": job, "before": b, "after": after, "speedup": b["median_s"] / after["median_s"],
                     "saved_s": b["median_s"] - after["median_s"]})
    print(f"before: {before['commit']}, recorded on {before['machine']['cpu']} ({before['machine']['date']}); "
          "the ratios mean something only on that machine")
    print(f"{'job':<16}{'before s':>9}{'after s':>9}{'before/after':>13}  imported at the first forward (before -> after)")
    for row in rows:
        imp = ", ".join(f"{m} {'y' if row['before']['imported'][m] else 'n'}->{'y' if row['after']['imported'][m] else 'n'}"
                        for m in ("peft", "sklearn", "pandas", "datasets", "scipy", "matplotlib"))
        print(f"{row['job']:<16}{row['before']['median_s']:>9.2f}{row['after']['median_s']:>9.2f}"
              f"{row['speedup']:>12.2f}x  {imp}")
    precision = {"before": before["precision"], "after": {c: s["cells"][c]["train"]["precision"] for c in s["cells"]}}
    write_result("startup", {"quick": args.quick, "repeats": args.repeats, "before_commit": before["commit"],
                             "before_about": before["about"], "before_repeats": before["repeats"],
                             "precision": precision, "watched": WATCH, "jobs": rows}, args.out)


if __name__ == "__main__":
    main()
