"""Does this device run bf16 / fp16 matmuls natively, or only emulate them? (`train.precision`)

A CPU without avx512_bf16 or AMX (most AMD parts before Zen 4, many Intel client parts) still
"runs" bf16: torch falls back to a scalar matmul, 10 to 20 times slower than fp32. Its flags say
so (oneDNN's `_is_mkldnn_bf16_supported()` is False), but flags can mislead (a VM that hides an
instruction set, or `ONEDNN_MAX_CPU_ISA` capping it), so a CPU counts as native only when the flag
says so AND a measurement agrees: a bf16 Linear forward + backward (128 tokens, 384 -> 1536, under
autocast, the shape of the default model's feed-forward) is faster than the same in fp32. The
measurement takes well under a second and is cached per host, CPU, torch and the environment
variables that cap the instruction set, in $XDG_CACHE_HOME/contrastlab/precision.json (else
~/.cache/...).

A GPU runs bf16 natively from compute capability 8.0 (Ampere); before that cuBLAS emulates it. fp16
is native on every GPU torch supports. Known figures, not measured.

To emulate an AVX2-only CPU on one with native bf16 (AVX2_ONLY; benchmarks/RESULTS.md uses it):
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
(the first turns oneDNN's bf16 kernels off and its flag False; the other two keep torch's own and
MKL's fp32 kernels at AVX2, so fp32 is not faster than on the real thing).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from contrastlab.operations.io import atomic_path
from contrastlab.operations.provenance import cpu_name

# environment variables that change which matmul kernels run (part of the cache key)
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
PROBE_SHAPE = (128, 384, 1536)  # tokens, in, out
CACHE_NAME = "precision.json"


@dataclass(frozen=True)
class Support:
    """How `dtype` runs on a device: natively, and how many times fp32's time it takes (None:
    not measured). `why`: the evidence, in words."""
    native: bool
    slowdown: float | None
    why: str


def support(name: str, device: torch.device) -> Support:
    """How precision `name` ("bf16" or "fp16") runs on `device`."""
    if device.type == "cuda":
        return _cuda_support(name, device)
    return _cpu_support(name)


def _cuda_support(name: str, device: torch.device) -> Support:
    major, minor = torch.cuda.get_device_capability(device)
    if name == "fp16" or major >= 8:
        return Support(True, None, f"compute capability {major}.{minor}")
    return Support(False, None, f"compute capability {major}.{minor}: bf16 is emulated before 8.0 (Ampere), "
                                "several times slower than fp16")


def onednn_flag(name: str) -> bool:
    """oneDNN's own answer: does this CPU have bf16 (avx512_bf16, AMX) / fp16 (avx512_fp16, AMX-FP16) kernels."""
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[name]
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


def _cpu_support(name: str) -> Support:
    flag = onednn_flag(name)
    slowdown = cached_slowdown(name)
    native = flag and slowdown < 1.0
    if not flag:
        why = f"oneDNN reports no native {name} kernels on this CPU; measured {slowdown:.1f}x fp32's time"
    else:
        why = f"oneDNN reports native {name} kernels; measured {slowdown:.2f}x fp32's time"
    return Support(native, slowdown, why)


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "contrastlab" / CACHE_NAME


def cache_key() -> str:
    env = ",".join(f"{k}={os.environ[k]}" for k in ISA_ENV if k in os.environ)
    return f"{socket.gethostname()}|{cpu_name()}|torch {torch.__version__}|{torch.backends.cpu.get_cpu_capability()}|{env}"


def cached_slowdown(name: str) -> float:
    """measure_slowdown(name) for this host, from the cache or measured once and added to it."""
    path, key = cache_path(), cache_key()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key, {})
    if name not in entry:
        entry[name] = measure_slowdown(name)
        cache[key] = entry
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        except OSError:  # a read-only home: measure again next time
            pass
    return float(entry[name])


def measure_slowdown(name: str, repeats: int = 7, budget_s: float = 0.5) -> float:
    """Time of a Linear forward + backward under `name` autocast over its time in fp32, on one
    thread; < 1 means faster than fp32. Each is the minimum over up to `repeats` runs after
    warm-ups (the minimum is what survives other processes on the cores); the half runs stop after `budget_s`,
    as an emulated one takes 10 to 20 times fp32's time on its first run already."""
    tokens, d_in, d_out = PROBE_SHAPE
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d_in, generator=gen, requires_grad=True)
    linear = torch.nn.Linear(d_in, d_out)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[name]

    def once(dtype) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or half, enabled=dtype is not None):
            y = linear(x)
        y.float().sum().backward()
        return time.perf_counter() - t

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: on busy cores, OpenMP's barriers make multi-threaded times erratic
    try:
        for dtype in (None, half, None):  # warm-ups: kernel selection, caches
            once(dtype)
        fp32 = min(once(None) for _ in range(repeats))
        times, start = [], time.perf_counter()
        while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
            times.append(once(half))
    finally:
        torch.set_num_threads(threads)
    return min(times) / fp32
