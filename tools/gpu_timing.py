"""The GPU check's step timing (tools/gpu-check): the project's own `Trainer.step` of the baseline
at the paper's shapes (texts that fill max_len, 32 examples per optimizer step, the top 4 layers
and the head training) in each precision and micro-batch split, then the candidate speed-ups at
the default of a GPU (bf16, the step as one micro-batch).

samples/s: examples of the timed steps over their wall time (the GPU synchronised at both ends),
after warm-up steps. Peak memory: torch.cuda.max_memory_allocated over the timed steps. FLOPs:
torch.utils.flop_counter over one real step (what executes: the frozen layers count for their
forward only), as benchmarks/flops.py counts them; fraction of peak = achieved FLOP/s over the
bf16 matmul FLOP/s measured here with one large torch.mm.
"""
from __future__ import annotations

import gc
import importlib.util
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from contrastlab.training import batching
from contrastlab.training.batching import epoch_steps
from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.data.prepared import load_prepared
from contrastlab.training.train import Trainer

REPO = Path(__file__).resolve().parent.parent
STEP = 32  # examples per optimizer step: the paper preset's 16 x 2
PRECISIONS = [("fp32, TF32 off", "fp32", False), ("fp32, TF32 on", "fp32", True), ("bf16", "bf16", True),
              ("fp16", "fp16", True)]
SPLITS = [16, 32]  # micro-batch: 16 x 2 (the reference's), 32 x 1 (micro_batch: auto on a GPU)
COMPILE_S = 120  # the compiled row starts only this long before the deadline: its warm-up compiles


def _custom_flops() -> dict:
    """benchmarks/flop_formulas.py's FLOP formulas for the kernels torch's counter does not know."""
    spec = importlib.util.spec_from_file_location("flop_formulas", REPO / "benchmarks" / "flop_formulas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CUSTOM_FLOPS


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_matmul_flops(device, n: int) -> float:
    """bf16 FLOP/s of an n x n x n torch.mm (median of 10 after 3 warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    times = []
    for i in range(13):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return 2 * n ** 3 / sorted(times)[len(times) // 2]


def cell(model_dir: str, max_len: int, precision: str, micro: int) -> CellConfig:
    return CellConfig.model_validate({
        "cell": "baseline", "family": "baseline", "seed": 1,
        "model": {"name": model_dir, "max_len": max_len, "trainable_layers": 4},
        "train": {"batch_size": 16, "grad_accum": 2, "micro_batch": micro, "precision": precision}})


@contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class ForeachAdamW(torch.optim.AdamW):
    """AdamW's multi-tensor loop instead of the fused kernel contrastlab.training.optim asks for."""

    def __init__(self, *args, fused=None, **kwargs):
        super().__init__(*args, foreach=True, **kwargs)


def pageable_copy(t, device):
    return t.to(device)


def time_steps(cfg, runtime, data, device, warmup: int, steps: int, count_flops: bool = False) -> dict:
    lengths = [len(s) for s in data.splits["train"].ids]
    order = epoch_steps(lengths, STEP, cfg.seed, 0)
    need = warmup + steps + count_flops
    order = (order * (need // len(order) + 1))[:need]
    t_build = time.perf_counter()
    trainer = Trainer(cfg, runtime, data, device, total_steps=10_000)
    out = {"micro_batch": trainer.micro}
    t0 = time.perf_counter()
    for i, idx in enumerate(order[:warmup]):
        trainer.step(idx, 0, i + 1)
    sync(device)
    out["first_steps_s"] = time.perf_counter() - t0  # torch.compile compiles here
    out["build_s"] = t0 - t_build
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i, idx in enumerate(order[warmup:warmup + steps]):
        trainer.step(idx, 0, warmup + i + 1)
    sync(device)
    dt = time.perf_counter() - t0
    out.update(samples_per_s=sum(len(i) for i in order[warmup:warmup + steps]) / dt, ms_per_step=1000 * dt / steps)
    out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False, custom_mapping=_custom_flops()) as counter:
            trainer.step(order[-1], 0, need)
        out["flop_per_example"] = counter.get_total_flops() / len(order[-1])
        out["flop_per_token"] = counter.get_total_flops() / sum(lengths[j] for j in order[-1])
    del trainer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def run_timing(model_dir: str, prepared_dir: Path, max_len: int, device, dry: bool, deadline: float, log) -> dict:
    """Every row of the tables, in order; rows past `deadline` (time.monotonic) are skipped, and say so."""
    data = load_prepared(prepared_dir)
    warmup, steps = (1, 1) if dry else (3, 10)
    peak = peak_matmul_flops(device, 512 if dry else 8192)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "peak_bf16_flops": peak,
              "max_len": max_len, "rows": [], "variants": [], "skipped": []}
    flop_per_example = None

    def measure(label, precision, tf32, micro, needs_s=0.0, **extra):
        nonlocal flop_per_example
        if time.monotonic() + needs_s > deadline:
            result["skipped"].append(label)
            log(f"timing: {label}: skipped, past the time budget")
            return None
        runtime = RuntimeConfig(device=str(device), tf32=tf32, compile=extra.pop("compile", False),
                                allow_slow_precision=True)  # the table times every precision, emulated ones too
        row = time_steps(cell(model_dir, max_len, precision, micro), runtime, data, device, warmup, steps,
                         count_flops=flop_per_example is None)
        if "flop_per_example" in row:
            flop_per_example = row.pop("flop_per_example")
            result["flop_per_token"] = row.pop("flop_per_token")
        row.update(label=label, precision=precision, tf32=tf32,
                   tflops=row["samples_per_s"] * flop_per_example / 1e12,
                   fraction_of_bf16_peak=row["samples_per_s"] * flop_per_example / peak, **extra)
        log(f"timing: {label}, micro-batch {micro}: {row['samples_per_s']:.0f} samples/s, "
            f"{row['fraction_of_bf16_peak']:.1%} of bf16 peak")
        return row

    for label, precision, tf32 in PRECISIONS:
        for micro in SPLITS:
            row = measure(label, precision, tf32, micro)
            if row:
                result["rows"].append(row)
    # the candidates, each against the default it would replace (bf16, 32 x 1, fused AdamW, pinned copies)
    base = measure("bf16, default", "bf16", True, 32)
    if base:
        result["variants"].append(dict(base, variant="default: fused AdamW, pinned non-blocking copies, eager"))
    with patched(torch.optim, "AdamW", ForeachAdamW):
        row = measure("bf16, foreach AdamW", "bf16", True, 32)
    if row:
        result["variants"].append(dict(row, variant="AdamW foreach (not fused)"))
    if device.type == "cuda":
        with patched(batching, "to_device", pageable_copy):
            row = measure("bf16, pageable copies", "bf16", True, 32)
        if row:
            result["variants"].append(dict(row, variant="pageable blocking host-to-device copies"))
    if dry:
        result["skipped"].append("torch.compile (dry mode)")
    else:
        row = measure("bf16, torch.compile", "bf16", True, 32, needs_s=COMPILE_S, compile=True)
        if row:
            result["variants"].append(dict(row, variant="torch.compile of the encoder's forward (dynamic=True)"))
    return result


def markdown(result: dict) -> str:
    peak = result["peak_bf16_flops"] / 1e12
    fpt = result["flop_per_token"]
    lines = [f"Step timing on {result['device']} (torch {result['torch']}, CUDA {result['cuda']}): the baseline's "
             f"`Trainer.step`, max_len {result['max_len']} filled, {STEP} examples per step, top 4 layers + head; "
             f"{fpt / 1e9:.3g} GFLOP per token (counted); bf16 peak {peak:.3g} TFLOP/s (measured torch.mm).",
             "", "| precision | micro-batch | samples/s | ms/step | peak memory | TFLOP/s | of bf16 peak |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        mem = f"{r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] is not None else "n/a (CPU)"
        lines.append(f"| {r['label']} | {r['micro_batch']} x {STEP // r['micro_batch']} | {r['samples_per_s']:.0f} | "
                     f"{r['ms_per_step']:.0f} | {mem} | {r['tflops']:.3g} | {r['fraction_of_bf16_peak']:.1%} |")
    if result["variants"]:
        lines += ["", "| bf16, 32 x 1 | samples/s | ms/step | first steps (s) | of bf16 peak |", "|---|---:|---:|---:|---:|"]
        for r in result["variants"]:
            lines.append(f"| {r['variant']} | {r['samples_per_s']:.0f} | {r['ms_per_step']:.0f} | "
                         f"{r['first_steps_s']:.1f} | {r['fraction_of_bf16_peak']:.1%} |")
    if result["skipped"]:
        lines += ["", "Not measured: " + "; ".join(result["skipped"]) + "."]
    return "\n".join(lines) + "\n"
