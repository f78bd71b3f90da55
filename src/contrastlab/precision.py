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

A precision the device cannot run stops the job with an error that names `train.precision`:
bf16 on a GPU without bf16 (before Ampere) and fp16 on a CPU that lacks float16 autocast. We do
not fall back silently, since a bf16 cell that ran in fp32 would not be what its config says.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionUnsupported(RuntimeError):
    pass


@dataclass
class Precision:
    name: str
    device: torch.device
    scaler: torch.amp.GradScaler | None

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


def check_supported(name: str, device: torch.device) -> None:
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        gpu = torch.cuda.get_device_name(device)
        raise PrecisionUnsupported(f"train.precision = bf16, but {device} ({gpu}) has no bfloat16 support "
                                   "(it needs an Ampere or newer GPU): use fp16 or fp32")
    if name == "fp16" and device.type == "cpu" and not _cpu_fp16_autocast():
        raise PrecisionUnsupported("train.precision = fp16, but this torch has no float16 autocast on the CPU: "
                                   "use bf16 or fp32")


def _cpu_fp16_autocast() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        return True
    except RuntimeError:
        return False


def setup_precision(name: str, device: torch.device, tf32: bool = True) -> Precision:
    """The job's precision on `device`; raises PrecisionUnsupported naming train.precision."""
    check_supported(name, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(name, device, scaler)
