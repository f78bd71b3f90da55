"""Shared helpers of the benchmarks: the default cell, its prepared data, interleaved timing.

Every comparison in benchmarks/ is measured side by side in one process: the contenders run in
turn (A, B, A, B, ...) and each is judged by its median, so a neighbour's load hits both alike.
"""
from __future__ import annotations

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


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def default_cell(family: str = "baseline", **overrides):
    """The CellConfig of the default study's first cell of `family` (config.yaml), on the CPU.
    `overrides`: dotted keys (train.epochs=1) set on the resolved config."""
    from contrastlab.cellconfig import CellConfig
    from contrastlab.grid import expand_grid

    config = default_config()
    config["experiments"] = {family: {"family": family}}
    d = expand_grid(config)[0].config
    d["device"] = "cpu"
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (d[section] if section else d)[name] = value
    return CellConfig.from_dict(d)


def prepared_default(max_len: int | None = None, **data_overrides) -> Path:
    """The default study's prepared (tokenised) data, built once under CACHE and reused."""
    from contrastlab.data import DataConfig, prepare
    from contrastlab.model import load_tokenizer

    config = default_config()
    data = {**config["data"], **data_overrides}
    max_len = max_len or config["model"]["max_len"]
    tag = "-".join(f"{k}{v}" for k, v in sorted(data_overrides.items()))
    out = CACHE / f"prepared-len{max_len}{'-' + tag if tag else ''}"
    if not (out / "labels.json").exists():
        prepare(DataConfig.from_dict(data), load_tokenizer(config["model"]["name"]), max_len, out)
    return out


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict:
    """Run each contender `warmup` times, then `repeats` rounds of all of them in turn.
    -> {name: {"median_s", "times_s"}}; the last return value of each is kept under "result"."""
    out = {name: {"times_s": [], "result": None} for name in contenders}
    for _ in range(warmup):
        for name, fn in contenders.items():
            out[name]["result"] = fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            t = time.perf_counter()
            out[name]["result"] = fn()
            out[name]["times_s"].append(time.perf_counter() - t)
    for r in out.values():
        r["median_s"] = statistics.median(r["times_s"]) if r["times_s"] else float("nan")
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch
    import transformers

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "load_avg": list(os.getloadavg()), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_result(name: str, payload: dict, out: Path | None = None) -> Path:
    from contrastlab.io import write_json

    out = out or RESULTS / f"{name}.json"
    write_json(out, {"benchmark": name, "machine": machine(), **payload})
    print(f"written {out}")
    return out
