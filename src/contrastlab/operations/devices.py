"""Which device a job runs on, and how concurrent jobs on one machine share GPUs.

Snakemake's `--resources gpu=N` only counts: it lets N GPU jobs run at once but does not say
which GPU each should use. So a job picks one itself:

- `cpu` or an explicit `cuda:K`: used as given, nothing is claimed.
- Under a scheduler that allocated GPUs to the job (SLURM sets `SLURM_JOB_ID` and
  `CUDA_VISIBLE_DEVICES`), with exactly one GPU visible: `cuda:0`, the scheduler's pick.
- Otherwise (a workstation, or several GPUs visible): each GPU has `runtime.jobs_per_gpu` slots,
  and the job takes an exclusive lock file of one slot (`fcntl.flock` on
  `<lock dir>/gpu-<id>.slot<k>.lock`, `<id>` the physical index or UUID from
  `CUDA_VISIBLE_DEVICES`) and holds it for the life of the process; the kernel releases it when
  the process ends, however it ends. Slots are tried slot 0 of every GPU first, then slot 1, ...,
  so jobs spread over the GPUs before they share one. The GPU of the slot it gets is its device.
  When every slot is held: `auto` falls back to the CPU (with a warning), `cuda` waits up to
  `wait_s` seconds for one to come free, then raises `DevicesBusy` naming the lock files.
- Under a scheduler that allocated no GPU (`SLURM_JOB_ID` set, `CUDA_VISIBLE_DEVICES` unset):
  the GPUs of the node belong to other jobs, so `auto` is the CPU and `cuda` an error.

The lock directory is `$CONTRASTLAB_GPU_LOCK_DIR`, else `/tmp/contrastlab-gpu-locks` (one
machine-wide place: `$TMPDIR` may differ between jobs).

Snakemake's side of the slots: `--resources gpu=N` counts GPUs, and with jobs_per_gpu J the
workflow (workflow/rules/common.smk) turns that limit into N x J, each GPU job taking one, so the
command line stays `--resources gpu=N` whatever J is.

Once picked, `init_device` makes the device current and initialises CUDA in this process before
anything asks it for state: `torch.cuda.reset_peak_memory_stats` raises "Invalid device
argument" before the CUDA allocator exists, and `torch.cuda.is_bf16_supported` asks the current
device. A job on the CPU never initialises CUDA (it would take memory on a GPU other jobs hold).
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from pathlib import Path

import torch

log = logging.getLogger("contrastlab.operations.devices")

DEFAULT_LOCK_DIR = "/tmp/contrastlab-gpu-locks"
SCHEDULER_JOB_VARS = ("SLURM_JOB_ID",)
_held: dict[str, int] = {}  # lock file path -> open fd, kept for the life of the process


class DeviceUnavailable(RuntimeError):
    """A GPU was required (`device: cuda`) but the job cannot see any."""


class DevicesBusy(RuntimeError):
    """A GPU was required and every visible one stayed locked by other jobs for `wait_s` seconds."""


def lock_dir_default(env=os.environ) -> Path:
    return Path(env.get("CONTRASTLAB_GPU_LOCK_DIR") or DEFAULT_LOCK_DIR)


def under_scheduler(env=os.environ) -> bool:
    return any(env.get(v) for v in SCHEDULER_JOB_VARS)


def visible_gpu_ids(device_count: int, env=os.environ) -> list[str]:
    """Physical ids of the `device_count` GPUs this process sees, in CUDA index order.

    With `CUDA_VISIBLE_DEVICES=2,3` the process's cuda:0 is physical GPU 2: the lock must be
    GPU 2's, so that a job restricted to other GPUs never collides with it."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(device_count)]
    ids = [s.strip() for s in listed.split(",") if s.strip()]
    return ids[:device_count]


def _try_lock(path: Path) -> bool:
    """Take the exclusive lock on `path` without waiting; True if this process now holds it."""
    if str(path) in _held:
        return False  # this process already holds it for another claim
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a human looking at the file
    _held[str(path)] = fd
    return True


def slot_lock(lock_dir: Path, gpu: str, slot: int) -> Path:
    return lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.slot{slot}.lock"


def claim_gpu(ids: list[str], lock_dir: Path, jobs_per_gpu: int = 1) -> tuple[int, int] | None:
    """Lock the first free slot (slot 0 of every GPU of `ids`, then slot 1, ...); (its GPU's index
    in `ids` (= its CUDA index), the slot), or None if all are held."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(jobs_per_gpu):
        for index, gpu in enumerate(ids):
            if _try_lock(slot_lock(lock_dir, gpu, slot)):
                return index, slot
    return None


def pick_device(requested: str = "auto", *, jobs_per_gpu: int = 1, device_count: int | None = None, env=None,
                lock_dir: str | Path | None = None, wait_s: float = 600.0, poll_s: float = 1.0) -> torch.device:
    """The device for this process; see the module docstring for the rules.

    `device_count` (default `torch.cuda.device_count()`, which does not initialise CUDA), `env`
    (default `os.environ`) and `lock_dir` are injectable so the rules can be tested without GPUs."""
    env = os.environ if env is None else env
    if requested == "cpu" or re.fullmatch(r"cuda:\d+", requested):
        return torch.device(requested)
    if requested not in ("auto", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:<index>, got {requested!r}")
    count = torch.cuda.device_count() if device_count is None else device_count
    scheduled = under_scheduler(env)
    if scheduled and env.get("CUDA_VISIBLE_DEVICES") is None:
        count = 0  # the scheduler gave this job no GPU; those the node has belong to other jobs
    if count == 0:
        if requested == "cuda":
            why = "the scheduler allocated none to this job" if scheduled else "no CUDA device is visible"
            raise DeviceUnavailable(f"device 'cuda' requested but {why} (request a GPU: runtime.gpus >= 1)")
        return torch.device("cpu")
    if scheduled and count == 1:
        return torch.device("cuda:0")

    ids = visible_gpu_ids(count, env)
    lock_dir = Path(lock_dir) if lock_dir is not None else lock_dir_default(env)
    deadline = time.monotonic() + (wait_s if requested == "cuda" else 0)
    while True:
        claimed = claim_gpu(ids, lock_dir, jobs_per_gpu)
        if claimed is not None:
            index, slot = claimed
            log.info("using cuda:%d (GPU %s, lock %s)", index, ids[index], slot_lock(lock_dir, ids[index], slot))
            return torch.device(f"cuda:{index}")
        held = f"all {len(ids)} GPUs ({','.join(ids)})" + (f" x {jobs_per_gpu} slots" if jobs_per_gpu > 1 else "")
        if requested == "auto":
            log.warning("%s are held by other jobs (locks in %s): running on the CPU", held, lock_dir)
            return torch.device("cpu")
        if time.monotonic() >= deadline:
            raise DevicesBusy(f"{held} stayed locked by other jobs for "
                              f"{wait_s:.0f} s (lock files {lock_dir}/gpu-*.lock; `cat` one for its pid). "
                              f"Run at most that many GPU jobs at once: --resources gpu={len(ids)}")
        time.sleep(poll_s)


def init_device(device: torch.device) -> torch.device:
    """Make a CUDA `device` this process's current device, initialise CUDA and zero its peak-memory
    counter, in that order (see the module docstring); nothing for the CPU. -> `device`."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.init()  # creates the context and the caching allocator the memory counters live in
        torch.cuda.reset_peak_memory_stats(device)
    return device
