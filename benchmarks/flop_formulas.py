"""FLOP formulas for the kernels torch.utils.flop_counter does not count: PyTorch's CPU
flash-attention (fp32 SDPA on the CPU). Torch-only, so that flops.py, paper_cost.py and
tools/gpu_timing.py (which loads this file by its path) share them.
"""
from __future__ import annotations

import torch

aten = torch.ops.aten


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, s_q, d = query_shape
    s_k, d_v = key_shape[2], value_shape[3]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return 2 * _sdpa_cpu_flop(query_shape, key_shape, value_shape)  # dQ, dK, dV, dP: twice the forward


CUSTOM_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
                aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop}
