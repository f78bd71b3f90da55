"""Mixed precision (train.precision) and the GPU's math settings, for training and inference.

fp32: plain float32 (with TF32 matmuls on GPUs that have them, unless runtime.tf32 is false).
bf16 / fp16: `torch.autocast` on the job's device type; master weights and optimizer state stay
float32 and every loss is computed in float32 (the objectives cast logits up, and the
contrastive losses turn autocast off). fp16 adds a gradient scaler against underflow; bf16 has
fp32's range and needs none.

On the CPU, bf16/fp16 training runs the attention as plain matmuls ("eager"): PyTorch's CPU
flash-attention backward in bf16 is about ten times slower than in fp32, while the matmuls run on
the CPU's bf16 units. Frozen linear layers are stored in the autocast dtype: autocast only ever reads their
weights cast to it, so storing them that way skips a cast per forward and gives the same numbers.

`auto` (the default) resolves, per job, to bf16 where the device runs it natively (a GPU of
compute capability 8.0 or newer; a CPU with native bf16 kernels, contrastlab.training.native), else to fp16
with a scaler on a GPU, else to fp32. The resolved precision is what the job runs and records.

An explicit bf16 or fp16 that the device only emulates (bf16 on a CPU without avx512_bf16/AMX or on
a GPU before Ampere; fp16 on almost every CPU) stops the job at its start with one line: the
device, the measured or known slowdown and the fix, unless runtime.allow_slow_precision is true.
A precision the device cannot run at all (fp16 on a CPU whose torch lacks float16 autocast) always
stops. We never fall back silently: a bf16 cell that ran in fp32 would not be what its config says.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from contrastlab.training import native
from contrastlab.operations.provenance import cpu_name

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionUnsupported(RuntimeError):
    pass


@dataclass
class Precision:
    name: str  # what runs: fp32, bf16 or fp16 (`auto` resolved)
    device: torch.device
    scaler: torch.amp.GradScaler | None
    configured: str = ""  # train.precision as written (auto, or name)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def autocast(self):
        """The forward pass's context: autocast for bf16/fp16, nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer) -> None:
        """Before clipping: fp16 gradients are still multiplied by the scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:  # skips the step when a gradient overflowed, and adapts the scale
            self.scaler.step(optimizer)
            self.scaler.update()


def attention_kernel(name: str, device: torch.device, backward: bool = True) -> str:
    """The transformers attention implementation for this precision and device (see above); a job
    without a backward pass (embedding) keeps SDPA, whose bf16 forward is the fastest."""
    return "eager" if backward and device.type == "cpu" and name != "fp32" else "sdpa"


def store_frozen_in_autocast_dtype(module: torch.nn.Module, name: str) -> int:
    """Cast the linear layers none of whose parameters train to the autocast dtype (bf16/fp16);
    -> how many. Trainable weights, norms and embeddings stay float32."""
    if name == "fp32":
        return 0
    frozen = [m for m in module.modules() if isinstance(m, torch.nn.Linear)
              and not any(p.requires_grad for p in m.parameters())]
    for m in frozen:
        m.to(DTYPES[name])
    return len(frozen)


def resolve(name: str, device: torch.device) -> str:
    """train.precision `name` on `device`: itself, or for auto the fastest precision the device
    runs natively (bf16; on a GPU without it, fp16 with a scaler; else fp32)."""
    if name != "auto":
        return name
    if native.support("bf16", device).native:
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def device_words(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return f"{device} ({name})"


def check_supported(name: str, device: torch.device, allow_slow: bool = False) -> None:
    """Raise PrecisionUnsupported (one line naming train.precision) for a precision `device` cannot
    run, or only emulates (unless `allow_slow`: runtime.allow_slow_precision)."""
    if name == "fp32":
        return
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=True):
        raise PrecisionUnsupported(f"train.precision = bf16, but {device_words(device)} has no bfloat16 support "
                                   "at all: use train.precision: auto (fp16 with a scaler there) or fp32")
    if name == "fp16" and device.type == "cpu" and not _cpu_fp16_autocast():
        raise PrecisionUnsupported("train.precision = fp16, but this torch has no float16 autocast on the CPU: "
                                   "use train.precision: auto or fp32")
    if allow_slow:
        return
    how = native.support(name, device)
    if not how.native:
        fallback = resolve("auto", device)
        raise PrecisionUnsupported(
            f"train.precision = {name}, but {device_words(device)} only emulates it ({how.why}): use "
            f"train.precision: auto ({fallback} here) or fp32, or set runtime.allow_slow_precision: true to run it anyway")


def _cpu_fp16_autocast() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        return True
    except RuntimeError:
        return False


def setup_precision(name: str, device: torch.device, tf32: bool = True, allow_slow: bool = False) -> Precision:
    """The job's precision on `device`, `auto` resolved; raises PrecisionUnsupported naming
    train.precision (see the module's docstring)."""
    resolved = resolve(name, device)
    check_supported(resolved, device, allow_slow)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    scaler = torch.amp.GradScaler(device.type) if resolved == "fp16" else None
    return Precision(resolved, device, scaler, name)
