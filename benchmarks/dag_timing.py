"""The DAG's own cost: how long Snakemake takes to plan, and to do nothing, on our workflow.

    python benchmarks/dag_timing.py [--quick] [--repeats R]

Timed (wall clock of the whole `snakemake` command, interleaved repeats, median each):
- floor: `snakemake --version` (interpreter start + import: what no DAG can beat);
- paper dry run: `snakemake -n` on config/paper.yaml (every cell x 3 seeds; config.yaml if the
  preset is absent) in an empty scratch directory;
- default dry run, no outputs: `snakemake -n` on config.yaml in an empty scratch directory;
- default dry run, finished: the same once every output exists (each output file of the DAG is
  created empty and `snakemake --touch` marks them up to date in DAG order; no training runs);
- tiny dry run / tiny no-op run: a finished TINY study (tests/configs/e2e_tiny.yaml with the
  tiny random DeBERTa of contrastlab.training.random_model, really run once here) then `snakemake -n` and a real
  `snakemake --cores 1` that finds nothing to do.
The DAG's cost depends on the number of cells and jobs, not on the model's size: the tiny
no-op stands for the no-op of a finished default run, whose real run would take ~30 minutes.

Goal: a few seconds each (GOAL_S). Also given: each time over the floor.

Before the redesign: the same two dry runs (paper preset, default with no outputs) of commit
c540d97, recorded data (benchmarks/results/before_c540d97.json, with the commit and machine that
measured them), listed beside this run's figures and not judged.

A machine with SLURM clients but no controller that answers (this one after the test suite's
cluster is stopped) costs every `snakemake` start 10 s: snakemake-executor-plugin-slurm runs
`scontrol show config` (10 s timeout) when it is imported. That is not the DAG's cost and no
user has it (a workstation has no scontrol; a login node's controller answers), so then the
timings run with a `scontrol` that fails at once, and that floor is recorded beside them.
Writes benchmarks/results/dag_timing.json.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, arguments, interleaved, recorded_before, write_result

from contrastlab.training.random_model import make_random_deberta

GOAL_S = 5.0
SNAKEMAKE = [os.path.abspath(sys.executable), "-m", "snakemake"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO / "src")}


def tiny_config(path: Path, model_dir: Path) -> Path:
    """tests/configs/e2e_tiny.yaml (a data file) with the tiny model."""
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "e2e_tiny.yaml").read_text())
    cfg["model"]["name"] = str(model_dir)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dead_slurm_controller() -> bool:
    """True when scontrol exists but no controller answers within 3 s."""
    if not shutil.which("scontrol"):
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=3).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def shim_scontrol(folder: Path) -> None:
    """Put a `scontrol` that fails at once first on the PATH of every timed command."""
    shim = folder / "scontrol"
    shim.write_text("#!/bin/sh\nexit 1\n")
    shim.chmod(0o755)
    ENV["PATH"] = f"{folder}{os.pathsep}{ENV['PATH']}"


def smk(workdir: Path | None, config: Path | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`snakemake` on this repository's Snakefile."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *(["--directory", str(workdir)] if workdir else []),
           *(["--configfile", str(config)] if config else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=workdir or REPO)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def n_jobs(workdir: Path, config: Path) -> int:
    out = smk(workdir, config, "-n", "--quiet", "rules")
    m = re.search(r"^\s*total\s+(\d+)\s*$", out.stdout + out.stderr, flags=re.M)
    return int(m.group(1)) if m else 0


def fake_finished(workdir: Path, config: Path) -> int:
    """Create every output of the DAG empty ("{}" for JSON; directories for directory outputs), then let
    `snakemake --touch` mark them up to date in DAG order. Returns the number of outputs."""
    out = smk(workdir, config, "--summary").stdout
    rows = [line.split("\t") for line in out.splitlines()[1:] if "\t" in line]
    for path, _mtime, rule, *_ in rows:
        p = workdir / path
        if rule == "prepare":
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("{}" if p.suffix == ".json" else "")  # the status table (onsuccess) reads metrics.json
    smk(workdir, config, "--touch", "--cores", "1")
    return len(rows)


def main() -> None:
    ap = arguments(__doc__, "one repeat: a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    paper = REPO / "config" / "paper.yaml"
    notes = []
    if not paper.exists():
        notes.append("config/paper.yaml absent: the 'paper' figure is config.yaml's")
        paper = REPO / "config.yaml"
    default = REPO / "config.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        unshimmed_floor = None
        if dead_slurm_controller():
            t = time.perf_counter()
            smk(None, None, "--version")
            unshimmed_floor = time.perf_counter() - t
            (tmp / "shim").mkdir()
            shim_scontrol(tmp / "shim")
            notes.append(f"SLURM clients without a controller here: `snakemake --version` took {unshimmed_floor:.1f} s "
                         "(the slurm plugin's scontrol probe times out at import); the timings use a scontrol "
                         "that fails at once, as on a machine without SLURM")
        dirs = {k: tmp / k for k in ("paper", "default_empty", "default_done", "tiny")}
        for d in dirs.values():
            d.mkdir()
        n_outputs = fake_finished(dirs["default_done"], default)
        tiny_cfg = tiny_config(tmp / "tiny.yaml", make_random_deberta(tmp / "tiny_model", "tiny"))
        t = time.perf_counter()
        smk(dirs["tiny"], tiny_cfg, "--cores", "2")
        tiny_run_s = time.perf_counter() - t
        jobs = {"paper": n_jobs(dirs["paper"], paper), "default": n_jobs(dirs["default_empty"], default),
                "default_finished": n_jobs(dirs["default_done"], default),
                "tiny_finished": n_jobs(dirs["tiny"], tiny_cfg)}
        timed = interleaved({
            "floor: snakemake --version": lambda: smk(None, None, "--version"),
            "paper preset: snakemake -n": lambda: smk(dirs["paper"], paper, "-n", "--quiet"),
            "default: snakemake -n, no outputs": lambda: smk(dirs["default_empty"], default, "-n", "--quiet"),
            "default: snakemake -n, finished": lambda: smk(dirs["default_done"], default, "-n", "--quiet"),
            "tiny finished: snakemake -n": lambda: smk(dirs["tiny"], tiny_cfg, "-n", "--quiet"),
            "tiny finished: no-op run": lambda: smk(dirs["tiny"], tiny_cfg, "--cores", "1"),
        }, repeats=args.repeats, warmup=0)
        noop = smk(dirs["tiny"], tiny_cfg, "--cores", "1")
        nothing = "Nothing to be done" in noop.stdout + noop.stderr
    floor = timed["floor: snakemake --version"]["median_s"]
    rows = []
    for name, r in timed.items():
        judged = not name.startswith("floor")
        rows.append({"what": name, "median_s": r["median_s"], "times_s": r["times_s"], "over_floor": r["median_s"] / floor,
                     "goal_s": GOAL_S if judged else None, "met": (r["median_s"] <= GOAL_S) if judged else None})
    before = recorded_before("dag_timing")
    for name, r in before["rows"].items():  # not judged: another run, on the machine it names, over its own floor
        rows.append({"what": f"before ({before['commit']}, recorded): {name}", "median_s": r["median_s"],
                     "times_s": r["times_s"], "over_floor": r["median_s"] / before["floor_s"], "goal_s": None,
                     "met": None})
    jobs.update({f"before_{k}": v for k, v in before["jobs_planned"].items()})
    result = {"quick": args.quick, "repeats": args.repeats, "paper_config": str(paper.relative_to(REPO)),
              "jobs_planned": jobs, "default_outputs": n_outputs, "tiny_full_run_s": tiny_run_s,
              "tiny_noop_nothing_to_do": nothing, "rows": rows, "notes": notes,
              "floor_with_dead_slurm_controller_s": unshimmed_floor, "before_commit": before["commit"],
              "before_earlier": before["earlier"], "before_about": before["about"],
              "met": all(r["met"] for r in rows if r["met"] is not None) and nothing}
    print(f"jobs planned: {jobs}; tiny study ran in {tiny_run_s:.1f} s; no-op says nothing to do: {nothing}")
    for r in rows:
        print(f"  {r['what']:<40}{r['median_s']:>7.2f} s  ({r['over_floor']:.1f}x floor)")
    write_result("dag_timing", result, args.out)


if __name__ == "__main__":
    main()
