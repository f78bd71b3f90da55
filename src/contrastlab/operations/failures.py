"""Why a job failed, in one word: from the exception it raised, or from what its logs say when it
was killed before it could say anything (the kernel's OOM killer, SLURM's time limit).

The cause decides the retry (contrastlab.operations.jobs, contrastlab.training.train): out of memory retries with
half the micro-batch, a time limit or preemption resumes from the checkpoint, and a non-finite
loss, bad data or a bad config is not retried, since it would fail the same way.
"""
from __future__ import annotations

import re

CAUSES = {
    "gpu_oom": "GPU out of memory",
    "cpu_oom": "CPU out of memory",
    "time_limit": "time limit",
    "preempted": "preempted",
    "non_finite": "non-finite loss",
    "bad_data": "bad data",
    "bad_config": "bad config",
    "killed": "killed without an error (out of memory or a time limit?)",
    "other": "other",
}
NOT_RETRIED = {"non_finite", "bad_data", "bad_config"}  # deterministic: a retry fails the same way
OOM = {"gpu_oom", "cpu_oom"}

# Log lines that name a cause a process could not report itself (first match wins).
LOG_PATTERNS = [
    ("gpu_oom", re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED")),
    ("cpu_oom", re.compile(r"oom[-_]kill|OUT_OF_MEMORY|Out of memory|MemoryError|exit status 137")),
    ("time_limit", re.compile(r"DUE TO TIME LIMIT|TIMEOUT|time limit")),
    ("preempted", re.compile(r"DUE TO PREEMPTION|PREEMPTED")),
    ("non_finite", re.compile(r"the (loss|gradient norm) is (nan|inf|-inf)")),
    ("bad_data", re.compile(r"DataError")),
]


def classify(exc: BaseException) -> str:
    """The cause of an exception raised inside a job."""
    import torch  # every job that can fail this way has torch loaded already

    from contrastlab.training.checkpoint import Preempted
    from contrastlab.plan.config import ConfigError

    name = type(exc).__name__
    if isinstance(exc, torch.OutOfMemoryError):
        return "gpu_oom"
    if isinstance(exc, MemoryError):
        return "cpu_oom"
    if isinstance(exc, Preempted):
        return exc.cause
    if name in ("NonFiniteLoss", "NotRetried") and hasattr(exc, "cause"):
        return exc.cause
    if name == "DataError":
        return "bad_data"
    if isinstance(exc, ConfigError) or name == "PrecisionUnsupported":
        return "bad_config"
    if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
        return "gpu_oom"
    return "other"


def classify_log(text: str) -> str | None:
    """The cause a log reports, or None."""
    for cause, pattern in LOG_PATTERNS:
        if pattern.search(text):
            return cause
    return None


def last_error_line(text: str) -> str:
    """The line that says what went wrong: a FAILED line of ours, else the last exception line."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for line in reversed(lines):
        if " FAILED [" in line or line.startswith("FAILED ["):
            return line.split("FAILED ", 1)[1]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]+(Error|Exception|Exit|Loss)\b", line) or "error" in line.lower():
            return line
    return lines[-1] if lines else ""
