"""`contrastlab run my.yaml [snakemake args]`: a sequential study (`seeds: {start, max, step}`)
run round by round until every comparison is decided or has run `max` seeds.

Each round runs Snakemake for the seeds in results/<...>/sequential_seeds.json (every cell starts
with seeds 1..start), whose aggregate writes sequential.csv (contrastlab.analysis.sequential: per
comparison, the decision at each look so far); then the comparisons still open get `step` more
seeds, on their cell and on their reference, and the next round runs. A cell's seed is part of its
job's identity and its name is not, so a round adds jobs and reruns only the aggregate: finished
seeds are never retrained.

Why an outer loop rather than Snakemake checkpoints: the decision to add a seed reads the
aggregate of every cell, and the seed's training is upstream of that same aggregate, so a DAG
with checkpoints would need one aggregate per round with its own paths (round-numbered reports);
a loop keeps one report, and its state is one small file, so a round stopped midway (Ctrl-C, a
time limit) resumes with the same command. Torch-free: the DAG build reads `read_seeds`.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from contrastlab.plan import layout
from contrastlab.plan.config import ConfigError
from contrastlab.operations.io import write_text


def read_seeds(results: str, schedule, where: str) -> dict[str, list[int]]:
    """{cell: its seeds} from the study's sequential_seeds.json ({} before the first round)."""
    path = Path(layout.sequential_seeds_file(results))
    if schedule is None or not path.is_file():
        return {}
    try:
        seeds = json.loads(path.read_text())["seeds"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{where}: {path} is not a seeds file ({{\"seeds\": {{cell: [1, 2, ...]}}}}): "
                          "delete it to start the schedule over") from None
    for cell, got in seeds.items():
        if got != list(range(1, len(got) + 1)) or not schedule.start <= len(got) <= schedule.max:
            raise ConfigError(f"{where}: {path}: cell {cell} has seeds {got}: allowed 1..n with seeds.start "
                              f"{schedule.start} <= n <= seeds.max {schedule.max} (delete the file to start over)")
    return seeds


def grow(seeds: dict[str, list[int]], rows: list[dict], start: int, step: int, most: int) -> dict[str, list[int]]:
    """The next round's seeds: each open comparison's cell and reference get `step` more (at most
    `most`; the reference at least as many as the cell). rows: sequential.csv's."""
    count = dict.fromkeys({r["cell"] for r in rows} | {r["reference"] for r in rows}, start)
    count |= {c: len(s) for c, s in seeds.items()}
    new = dict(count)
    for r in rows:
        if r["stopped"] == "open":
            want = min(int(r["seeds"]) + step, most)
            for c in (r["cell"], r["reference"]):
                new[c] = max(new[c], want)
    return {c: list(range(1, n + 1)) for c, n in sorted(new.items())}


def read_table(results: str) -> list[dict]:
    path = Path(layout.sequential_table(results))
    with path.open() as f:
        return list(csv.DictReader(f))


def run(config: str, snakemake_args: list[str], max_rounds: int = 1000) -> int:
    """Rounds of `snakemake --configfile config [args]` until no comparison is open."""
    from contrastlab.plan.configfile import read_config
    from contrastlab.plan.study import plan

    cmd = [sys.executable, "-m", "snakemake", "--configfile", config, *snakemake_args]
    for round_ in range(1, max_rounds + 1):
        p = plan(read_config(config), config)
        schedule, results = p.study.schedule, p.study.results
        if schedule is None:
            raise ConfigError(f"{config}: seeds is a list: contrastlab run needs a schedule "
                              "(seeds: {start: 3, max: 10}); run snakemake itself for a fixed list")
        print(f"contrastlab run: round {round_}: {len(p.cells)} cell x seed runs", flush=True)
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            print(f"contrastlab run: snakemake failed (exit {rc}) in round {round_}; the same command resumes",
                  file=sys.stderr)
            return rc
        if not Path(layout.sequential_table(results)).is_file():  # a dry run (-n), or --until another rule
            print("contrastlab run: no sequential.csv after this snakemake run: stopping after one round", flush=True)
            return 0
        rows = read_table(results)
        seeds = {c.name: [] for c in p.cells}
        for c in p.cells:
            seeds[c.name].append(c.seed)
        nxt = grow(seeds, rows, schedule.start, schedule.step, schedule.max)
        open_ = [r["cell"] for r in rows if r["stopped"] == "open"]
        if not open_ or nxt == seeds:
            print(f"contrastlab run: every comparison stopped after {round_} round(s); see "
                  f"{layout.sequential_table(results)}", flush=True)
            return 0
        print(f"contrastlab run: {len(open_)} comparison(s) open ({', '.join(open_)}): adding seeds", flush=True)
        write_text(layout.sequential_seeds_file(results), json.dumps({"seeds": nxt}, indent=1) + "\n")
    return 0
