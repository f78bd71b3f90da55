"""Shared helpers of the benchmarks: the default study's cells, their prepared data, interleaved
timing, the recorded figures of the commit before the redesign, the result files.

The benchmarks are scripts run from anywhere as `python benchmarks/<name>.py`: Python puts the
script's folder first on sys.path, which is how they import this module (no sys.path edits), and
they use only the installed package's public functions (nothing from tests/).

Every comparison in benchmarks/ is measured side by side in one process (or one round robin of
processes): the contenders run in turn (A, B, A, B, ...) and each is judged by its median, so a
neighbour's load hits both alike.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import yaml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = REPO / ".snakemake" / "bench-cache"  # ignored by git; prepared datasets are reused from here
BEFORE_FILE = RESULTS / "before_c540d97.json"  # the figures of the code before the redesign, recorded with their commit
BEFORE_COMMIT = json.loads(BEFORE_FILE.read_text())["commit"]


def recorded_before(benchmark: str) -> dict:
    """The recorded figures of BEFORE_COMMIT for `benchmark` (startup, dag_timing), with where they come from."""
    recorded = json.loads(BEFORE_FILE.read_text())
    return {**recorded[benchmark], "commit": recorded["commit"], "about": recorded["about"],
            "machine": recorded["machine"]}


def arguments(doc: str, quick: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line, --quick (`quick` says what it then
    does) and --out (its JSON; default benchmarks/results/<name>.json)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--out", type=Path, default=None, help="where to write the result's JSON")
    return ap


GRID = REPO / "config" / "grid.yaml"  # every family, one seed: the cells the benchmarks measure


def grid_config() -> dict:
    return yaml.safe_load(GRID.read_text())


def _dotted(d: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        *path, name = key.split(".")
        target = d
        for part in path:
            target = target[part]
        target[name] = value
    return d


@functools.cache
def grid_plan():
    from contrastlab.plan.study import plan

    return plan(grid_config(), "config/grid.yaml")


def family_cells() -> list[str]:
    """The baseline and the first cell of each other family of the full grid (config/grid.yaml), and
    the LoRA baseline the token and cluster families are compared with."""
    first: dict[str, str] = {}
    for c in grid_plan().cells:
        lora_baseline = c.config.family == "baseline" and c.config.model.lora is not None
        first.setdefault("lora" if lora_baseline else c.config.family, c.name)
    return list(first.values())


def default_cell(name: str = "baseline", **overrides):
    """The CellConfig of the grid's cell `name` (config/grid.yaml, first seed), as its training
    job gets it. `overrides`: dotted keys set on it (train.precision="fp32", model.max_len=256)."""
    from contrastlab.plan.config import CellConfig

    cells = {c.name: c for c in reversed(grid_plan().cells)}
    if name not in cells:
        raise SystemExit(f"config/grid.yaml has no cell {name!r} (cells: {', '.join(reversed(list(cells)))})")
    return CellConfig.model_validate(_dotted(cells[name].config.model_dump(), overrides))


def default_runtime(**overrides):
    """The default study's RuntimeConfig, on the CPU (benchmarks compare CPU timings)."""
    from contrastlab.plan.config import RuntimeConfig

    d = {**(grid_config().get("runtime") or {}), "device": "cpu", **overrides}
    return RuntimeConfig.model_validate(d)


def split_of(text: str) -> tuple[int, int]:
    """'16x2' -> (batch_size 16, grad_accum 2)."""
    b, _, a = text.partition("x")
    return int(b), int(a or 1)


def prepared_default(max_len: int | None = None, **data_overrides) -> Path:
    """The default study's prepared (tokenised) data, built once under CACHE and reused."""
    from contrastlab.plan.config import DataConfig
    from contrastlab.data.splits import prepare
    from contrastlab.plan.layout import PREPARED_FILES
    from contrastlab.training.model import load_tokenizer

    config = grid_config()
    data = {**config["data"], **data_overrides}
    max_len = max_len or config["model"]["max_len"]
    tag = "-".join(f"{k}{v}" for k, v in sorted(data_overrides.items()))
    out = CACHE / f"prepared-v2-len{max_len}{'-' + tag if tag else ''}"
    if not (out / PREPARED_FILES["summary"]).exists():
        prepare(DataConfig.model_validate(data), load_tokenizer(config["model"]["name"]), max_len, out)
    return out


def initial_weights(cell, path: Path) -> Path:
    """weights.safetensors as `cell`'s training would write it, at its initialisation (the same cost
    to load as trained weights), built by the job's own contrastlab.training.jobmodel.job_model."""
    import torch
    from safetensors.torch import save_file

    from contrastlab.training.jobmodel import job_model
    from contrastlab.training.model import MODEL_PREFIX, trainable_state_dict

    built = job_model(cell, default_runtime(), torch.device("cpu"), 2)
    save_file({MODEL_PREFIX + k: v.float() for k, v in trainable_state_dict(built.model).items()}, str(path))
    return path


def cell_paths(root: Path, cell: str, seed: int = 1) -> tuple[dict, dict]:
    """(out, state) path dicts of contrastlab.training.train.train for a cell under `root`."""
    from contrastlab.plan import layout

    return layout.stage_files(str(root), "train", cell, seed), layout.train_state(str(root), cell, seed)


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                rotate: bool = False) -> dict:
    """Run each contender `warmup` times, then `repeats` rounds of all of them in turn (each round
    in a rotated order when `rotate`). -> {name: {"median_s", "times_s", "result"}} (the last
    return value of each is kept under "result")."""
    out = {name: {"times_s": [], "result": None} for name in contenders}
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            out[name]["result"] = contenders[name]()
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)] if rotate else names
        for name in order:
            t = time.perf_counter()
            out[name]["result"] = contenders[name]()
            out[name]["times_s"].append(time.perf_counter() - t)
    for r in out.values():
        r["median_s"] = statistics.median(r["times_s"]) if r["times_s"] else float("nan")
    return out


def cpu_flags() -> list[str]:
    """The CPU's bf16 / matrix units (what bf16 speed depends on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile",
                                                        "avx512_fp16", "amx_int8"})
    except OSError:
        pass
    return []


def cpu_bf16() -> dict:
    """Whether this CPU runs bf16 natively (contrastlab.training.native: oneDNN's flag and the measured
    slowdown against fp32) and what train.precision: auto picks here."""
    import torch

    from contrastlab.training import native
    from contrastlab.training.precision import resolve

    how = native.support("bf16", torch.device("cpu"))
    return {"onednn_flag": native.onednn_flag("bf16"), "native": how.native, "slowdown_vs_fp32": how.slowdown,
            "auto_picks": resolve("auto", torch.device("cpu")),
            "isa_env": {k: os.environ[k] for k in native.ISA_ENV if k in os.environ}}


def machine() -> dict:
    import torch
    import transformers

    from contrastlab.operations.provenance import cpu_name

    return {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "bf16": cpu_bf16(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "load_avg": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_result(name: str, payload: dict, out: Path | None = None) -> Path:
    from contrastlab.operations.io import write_json

    out = out or RESULTS / f"{name}.json"
    write_json(out, {"benchmark": name, "machine": machine(), **payload})
    print(f"written {out}")
    return out
