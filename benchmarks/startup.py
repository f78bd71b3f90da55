"""A train or embed job's start-up: from process start to the end of its first forward pass,
before the redesign (commit c540d97) and after (the working tree), side by side.

    python benchmarks/startup.py [--quick] [--repeats R]

Jobs: the train job of the default study's baseline cell and of its LoRA cell (peft), and the
embed job of the baseline cell. Each is its rule's own Snakemake script (workflow/scripts/
train.py, embed.py of the tree in question) run by benchmarks/_startup_driver.py with the params,
inputs and outputs its rule would give it (the driver stands in for Snakemake's script preamble,
which is the same either way). "before" runs the scripts of a git worktree of c540d97 with
PYTHONPATH=<worktree>/src, its own config.yaml, its own prepared data (made once by its own
`prepare`) and weights in its own format; "after" runs the working tree's, as its jobs get them
(PYTHONPATH=src, config.yaml's cells: including their train.precision). Both use this Python.

Time: from just before the parent starts the process (time.time() before Popen) to the end of
the first forward of the encoder (the driver's global forward hook; the process then exits).
Split into: interpreter start, `import torch` (both adapters' first import), and the rest (the
job's own imports, config, data, tokenizer, model build, up to the first batch). Every round
runs every (job, tree) once, in a rotated order; R rounds; median each. Also listed: which of a
few heavy packages (peft, sklearn, pandas, datasets, scipy, matplotlib, pyarrow, ...) are in
sys.modules at the first forward, and how many modules in all.

No goal is set by the issue for this figure: it is reported as before / after.
Writes benchmarks/results/startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BEFORE_COMMIT, CACHE, REPO, before_tree, default_cell, default_config, default_runtime,  # noqa: E402
                     prepared_default, write_result)

DRIVER = Path(__file__).resolve().parent / "_startup_driver.py"
WATCH = ["peft", "sklearn", "pandas", "datasets", "scipy", "matplotlib", "pyarrow", "accelerate", "safetensors",
         "transformers", "tokenizers", "pydantic", "yaml", "snakemake", "openTSNE"]
JOBS = {"train baseline": ("train", "baseline"), "train lora": ("train", "lora"), "embed baseline": ("embed", "baseline")}

# Run inside the c540d97 tree (its own API): its cells' configs, prepared data and weights.
BEFORE_SETUP = r'''
import json, sys
from pathlib import Path
import yaml
from safetensors.torch import save_file
import torch
from contrastlab.cellconfig import CellConfig
from contrastlab.data import DataConfig, load_prepared, prepare
from contrastlab.grid import expand_grid
from contrastlab.model import load_tokenizer, trainable_state_dict
from contrastlab.train import build

tree, prepared, weights, out = map(Path, sys.argv[1:5])
config = yaml.safe_load((tree / "config.yaml").read_text())
cells = {}
for c in expand_grid(config):
    cells.setdefault(c.name, c.config)
try:
    data, names = load_prepared(prepared)
except Exception:
    prepare(DataConfig.from_dict(config["data"]), load_tokenizer(config["model"]["name"]),
            config["model"]["max_len"], prepared)
    data, names = load_prepared(prepared)
cfg = dict(cells["baseline"], device="cpu")
model = build(CellConfig.from_dict(cfg), len(names), torch.device("cpu"))
weights.parent.mkdir(parents=True, exist_ok=True)
save_file(trainable_state_dict(model), str(weights))
out.write_text(json.dumps({"cells": {k: dict(cells[k], device="cpu") for k in ("baseline", "lora")},
                           "probe": config["probe"], "runtime": config["runtime"]}))
'''


def setup_before(tmp: Path) -> dict:
    tree = before_tree()
    prepared = CACHE / f"before-{BEFORE_COMMIT}-prepared"
    weights, out = tmp / "before-weights.safetensors", tmp / "before-setup.json"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", BEFORE_SETUP, str(tree), str(prepared), str(weights), str(out)],
                          env=env, capture_output=True, text=True, cwd=tree)
    if proc.returncode != 0:
        raise SystemExit(f"setting up the {BEFORE_COMMIT} tree failed:\n{proc.stderr[-3000:]}")
    s = json.loads(out.read_text())
    return {"tree": tree, "prepared": prepared, "weights": weights, **s}


def setup_after(tmp: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from contrastlab.model import MODEL_PREFIX, build_classifier, trainable_state_dict

    prepared = prepared_default()
    cells = {k: default_cell(k) for k in ("baseline", "lora")}
    weights = tmp / "after-weights.safetensors"
    torch.manual_seed(0)
    model = build_classifier(cells["baseline"].model, 2)
    save_file({MODEL_PREFIX + k: v for k, v in trainable_state_dict(model).items()}, str(weights))
    probe = {k: v for k, v in (default_config().get("probe") or {}).items() if k in ("split", "max_samples", "layers")}
    return {"tree": REPO, "prepared": prepared, "weights": weights, "probe": probe,
            "runtime": default_runtime().model_dump(), "cells": {k: c.model_dump() for k, c in cells.items()}}


def spec_of(version: str, s: dict, stage: str, cell: str, run_dir: Path) -> dict:
    """What the rule would hand its script (the snakemake object), for this tree's API."""
    from contrastlab import layout

    cfg = s["cells"][cell]
    threads = s["runtime"].get("threads", 2)
    log = [str(run_dir / "job.log")]
    if version == "before":
        if stage == "train":
            out = {"metrics": str(run_dir / "train" / "metrics.json")}
            params = {"cell": cfg}
            inputs = {"prepared": str(s["prepared"])}
        else:
            out = {"0": str(run_dir / "embed" / "embeddings.npz")}
            p = s["probe"]
            params = {"cell": cfg, "split": p["split"], "layers": p["layers"], "max_samples": p["max_samples"]}
            inputs = {"prepared": str(s["prepared"]), "weights": str(s["weights"])}
        config = {"runtime": s["runtime"]}
    else:
        root = str(run_dir / "results")
        if stage == "train":
            out = layout.stage_files(root, "train", cell, cfg["seed"])
            params = {"cell": cfg, "state": layout.train_state(root, cell, cfg["seed"]),
                      "attempts": layout.attempts_file(root, "train", f"{cell}/seed{cfg['seed']}")}
            inputs = {"prepared": str(s["prepared"])}
        else:
            out = layout.stage_files(root, "embed", cell, cfg["seed"])
            params = {"cell": cfg, "probe": s["probe"],
                      "attempts": layout.attempts_file(root, "embed", f"{cell}/seed{cfg['seed']}")}
            inputs = {"prepared": str(s["prepared"]), "weights": str(s["weights"])}
        config = {"runtime": s["runtime"]}
    return {"script": str(Path(s["tree"]) / "workflow" / "scripts" / f"{stage}.py"),
            "result": str(run_dir / "startup.json"),
            "snakemake": {"params": params, "input": inputs, "output": out, "log": log, "threads": threads,
                          "config": config}}


def run_one(version: str, s: dict, job: str, tmp: Path, k: int) -> dict:
    stage, cell = JOBS[job]
    run_dir = tmp / f"{version}-{stage}-{cell}-{k}"
    run_dir.mkdir(parents=True)
    spec = spec_of(version, s, stage, cell, run_dir)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(Path(s["tree"]) / "src"), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CONTRASTLAB_RUN", None)
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(DRIVER), str(run_dir / "spec.json")], env=env, capture_output=True,
                          text=True, cwd=run_dir, timeout=300)
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        raise SystemExit(f"{version} {job}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    r = json.loads(Path(spec["result"]).read_text())
    return {"total_s": r["t_first_forward"] - t0, "interpreter_s": r["t_start"] - t0,
            "torch_import_s": r["t_after_torch"] - r["t_start"], "rest_s": r["t_first_forward"] - r["t_after_torch"],
            "modules": r["modules"], "n_modules": r["n_modules"], "contrastlab": r["contrastlab"],
            "output_shape": r["output_shape"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round: a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setups = {"before": setup_before(tmp), "after": setup_after(tmp)}
        pairs = [(job, v) for job in JOBS for v in ("before", "after")]
        runs = {p: [] for p in pairs}
        k = 0
        for r in range(args.repeats):
            for job, v in pairs[r % len(pairs):] + pairs[:r % len(pairs)]:
                k += 1
                runs[(job, v)].append(run_one(v, setups[v], job, tmp, k))
                x = runs[(job, v)][-1]
                print(f"  round {r + 1} {v:<6} {job:<15} {x['total_s']:6.2f} s (interpreter {x['interpreter_s']:.2f}, "
                      f"torch {x['torch_import_s']:.2f}, rest {x['rest_s']:.2f})", flush=True)
        precision = {v: {c: setups[v]["cells"][c].get("train", {}).get("precision", "fp32") for c in ("baseline", "lora")}
                     for v in setups}
    rows = []
    for job in JOBS:
        row = {"job": job}
        for v in ("before", "after"):
            xs = runs[(job, v)]
            last = xs[-1]
            row[v] = {"median_s": statistics.median(x["total_s"] for x in xs), "times_s": [x["total_s"] for x in xs],
                      "interpreter_s": statistics.median(x["interpreter_s"] for x in xs),
                      "torch_import_s": statistics.median(x["torch_import_s"] for x in xs),
                      "rest_s": statistics.median(x["rest_s"] for x in xs),
                      "n_modules": last["n_modules"], "contrastlab": last["contrastlab"],
                      "imported": {m: m in last["modules"] for m in WATCH}, "output_shape": last["output_shape"]}
        row["speedup"] = row["before"]["median_s"] / row["after"]["median_s"]
        row["saved_s"] = row["before"]["median_s"] - row["after"]["median_s"]
        rows.append(row)
    print(f"{'job':<16}{'before s':>9}{'after s':>9}{'before/after':>13}  imported at the first forward (before -> after)")
    for row in rows:
        imp = ", ".join(f"{m} {'y' if row['before']['imported'][m] else 'n'}->{'y' if row['after']['imported'][m] else 'n'}"
                        for m in ("peft", "sklearn", "pandas", "datasets", "scipy", "matplotlib"))
        print(f"{row['job']:<16}{row['before']['median_s']:>9.2f}{row['after']['median_s']:>9.2f}"
              f"{row['speedup']:>12.2f}x  {imp}")
    write_result("startup", {"quick": args.quick, "repeats": args.repeats, "before_commit": BEFORE_COMMIT,
                             "precision": precision, "watched": WATCH, "jobs": rows}, args.out)


if __name__ == "__main__":
    main()
