"""Fraction of the machine's limit: the baseline's achieved FLOP/s while training, over the peak
matmul FLOP/s measured in the same run on the same threads.

    python benchmarks/flops.py [--quick] [--steps N] [--repeats R]

Workload: the default study's baseline cell (config.yaml: embedded MiniLM-L6, max_len 64,
batch 16 x grad-accum 2, top 4 layers trainable), real length-grouped batches of epoch 0, our
`_optimizer_step` (forward, backward, clipping, AdamW, scheduler: what `train` runs per step).

FLOPs: `torch.utils.flop_counter.FlopCounterMode` over N real optimizer steps. It counts the
matmuls and attention that actually execute, so the frozen layers count for their forward only
(autograd never computes their backward). The CPU flash-attention kernels are not in torch's
table and are registered here. FLOPs depend only on the batch shapes, so the same N steps are
then timed without the counter.

Peak: fp32 `torch.mm` of two PEAK_N x PEAK_N matrices on torch.get_num_threads() threads.
The training steps and the peak matmul run interleaved (R rounds, median of each).

Where the rest goes: torch.profiler over the same steps; each op's self time is put in a
category (matmul, attention, layernorm, GELU, elementwise, optimizer, ...); wall time not in
any op is Python and framework overhead. Also reported: matmul FLOP/s at the model's own
shapes (small matrices run below peak) and the padding share of the tokens.

Writes benchmarks/results/flops.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_cell, interleaved, prepared_default, write_result  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from contrastlab.batching import collate, step_groups, train_batches  # noqa: E402
from contrastlab.data import load_prepared  # noqa: E402
from contrastlab.model import load_tokenizer  # noqa: E402
from contrastlab.optim import build_optimizer  # noqa: E402
from contrastlab.train import _optimizer_step, build  # noqa: E402

GOAL = 0.6
PEAK_N = 2048
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


class Workload:
    """The default baseline cell's model, optimizer and the first real optimizer steps of epoch 0."""

    def __init__(self, n_steps: int):
        self.cfg = default_cell("baseline")
        data, names = load_prepared(prepared_default())
        self.ids = data["train"]["input_ids"]
        self.labels = np.asarray(data["train"]["label"])
        self.pad_id = load_tokenizer(self.cfg.model.name).pad_token_id
        self.model = build(self.cfg, len(names), torch.device("cpu"))
        lengths = [len(s) for s in self.ids]
        t = self.cfg.train
        groups = list(step_groups(train_batches(lengths, t.batch_size, self.cfg.seed, 0), t.grad_accum))
        self.optimizer, self.scheduler = build_optimizer(self.model, t, len(groups))
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.groups = groups[:n_steps]
        self.warmup = groups[n_steps:n_steps + 2]
        self.samples = sum(len(i) for g in self.groups for i in g)
        real = sum(lengths[j] for g in self.groups for i in g for j in i)
        padded = sum(len(i) * max(lengths[j] for j in i) for g in self.groups for i in g)
        self.tokens, self.padded_tokens = real, padded

    def steps(self, groups=None):
        for g in groups or self.groups:
            _optimizer_step(self.cfg, self.model, self.optimizer, self.scheduler, self.trainable, g, self.ids,
                            self.labels, self.pad_id, "cpu", 0, 1)

    def count_flops(self) -> tuple[int, dict]:
        with FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
            self.steps()
        by_op = {str(k): int(v) for k, v in counter.get_flop_counts()["Global"].items()}
        return counter.get_total_flops(), by_op

    def micro_batch_shapes(self) -> list[tuple[int, int]]:
        return [tuple(collate(self.ids, i, self.pad_id)["input_ids"].shape) for g in self.groups for i in g]


def peak_mm(n: int = PEAK_N):
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run():
        torch.mm(a, b)
    return run, 2 * n ** 3


def shape_mm_rate(shapes: list[tuple[int, int, int]], repeats: int = 20) -> float:
    """FLOP/s of torch.mm (forward-style [M,K]x[K,N]) over a list of (M, K, N), best of `repeats`."""
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for a, b in mats:
            torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return flops / best


CATEGORIES = [  # (category, predicate on the op name), first match wins
    ("matmul", lambda n: n in {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"}),
    ("attention (SDPA kernels)", lambda n: "scaled_dot_product" in n),
    ("layernorm", lambda n: "layer_norm" in n),
    ("GELU", lambda n: "gelu" in n),
    ("softmax / loss", lambda n: "softmax" in n or "nll_loss" in n or "cross_entropy" in n),
    ("dropout / RNG", lambda n: "dropout" in n or "bernoulli" in n),
    ("embedding lookup", lambda n: "embedding" in n or "index_select" in n),
    ("reductions (bias grads, norms)", lambda n: n in {"aten::sum", "aten::norm", "aten::linalg_vector_norm",
                                                          "aten::_foreach_norm", "aten::stack"}),
    ("copies / fills / allocation", lambda n: n in {"aten::copy_", "aten::fill_", "aten::zero_", "aten::empty",
                                                       "aten::empty_strided", "aten::clone", "aten::contiguous",
                                                       "aten::to", "aten::_to_copy", "aten::full",
                                                       "aten::zeros", "aten::ones", "aten::resize_"}),
]


def _ancestors(evt):
    p = evt.cpu_parent
    while p is not None:
        yield p
        p = p.cpu_parent


def profile_steps(work: Workload) -> dict:
    """Self time per category over the workload's steps; the optimizer step and the grad-norm
    clipping are their own categories whatever their ops; the rest of the wall time is overhead."""
    from torch.profiler import ProfilerActivity, profile, record_function

    orig = torch.nn.utils.clip_grad_norm_

    def clip(*a, **k):
        with record_function("clip_grad_norm"):
            return orig(*a, **k)

    torch.nn.utils.clip_grad_norm_ = clip
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            work.steps()
            wall = time.perf_counter() - t
    finally:
        torch.nn.utils.clip_grad_norm_ = orig
    totals: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for evt in prof.events():
        if not evt.name.startswith("aten::"):
            continue
        self_s = evt.self_cpu_time_total / 1e6
        names = [a.name for a in _ancestors(evt)]
        if any(n.startswith("Optimizer.") for n in names):
            cat = "optimizer (AdamW + scheduler)"
        elif "clip_grad_norm" in names:
            cat = "grad-norm clipping"
        else:
            cat = next((c for c, pred in CATEGORIES if pred(evt.name)), "other elementwise ops")
        totals[cat] += self_s
        ops[evt.name] += self_s
    in_ops = sum(totals.values())
    totals["Python / framework overhead (not in any op)"] = max(wall - in_ops, 0.0)
    return {"wall_s": wall, "seconds": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
            "share": {k: v / wall for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_ops_s": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:15])}


def model_mm_shapes(work: Workload, shapes_bt) -> list[tuple[int, int, int]]:
    """The (M, K, N) of the encoder's forward Linear layers for each micro-batch shape [B, T]."""
    cfg = work.model.encoder.config
    d, ff = cfg.hidden_size, cfg.intermediate_size
    out = []
    for b, t in shapes_bt:
        m = b * t
        out += [(m, d, d)] * 4 + [(m, d, ff), (m, ff, d)]  # Q, K, V, O; FFN in, FFN out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 steps, 2 rounds: a smoke test")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per timed round")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 2, 2
    threads = torch.get_num_threads()
    work = Workload(args.steps)
    flops, by_op = work.count_flops()
    peak_run, peak_flops = peak_mm()
    timed = interleaved({"train_steps": work.steps, "peak_mm": peak_run}, repeats=args.repeats)
    t_steps, t_peak = timed["train_steps"]["median_s"], timed["peak_mm"]["median_s"]
    achieved, peak = flops / t_steps, peak_flops / t_peak
    shapes_bt = work.micro_batch_shapes()
    # matmul rate at the model's shapes, sandwiched between two peak measurements
    peak_before = peak_flops / min(_time(peak_run) for _ in range(3))
    shape_rate = shape_mm_rate(model_mm_shapes(work, shapes_bt))
    peak_after = peak_flops / min(_time(peak_run) for _ in range(3))
    prof = profile_steps(work)
    matmul_s = prof["seconds"].get("matmul", 0.0)
    result = {
        "quick": args.quick, "threads": threads, "steps": args.steps, "repeats": args.repeats,
        "samples_per_round": work.samples, "micro_batch_shapes": shapes_bt,
        "tokens": work.tokens, "padded_tokens": work.padded_tokens,
        "padding_share": 1 - work.tokens / work.padded_tokens,
        "train_flops": flops, "train_flops_by_op": by_op,
        "train_step_round_s": timed["train_steps"]["times_s"], "peak_mm_s": timed["peak_mm"]["times_s"],
        "peak_mm_n": PEAK_N, "achieved_flops_per_s": achieved, "peak_flops_per_s": peak,
        "fraction_of_peak": achieved / peak, "goal": GOAL, "met": achieved / peak >= GOAL,
        "model_shape_mm_flops_per_s": shape_rate,
        "model_shape_mm_fraction_of_peak": shape_rate / statistics.mean([peak_before, peak_after]),
        "matmul_flops_per_s_in_training": (by_op.get("aten.mm", 0) + by_op.get("aten.addmm", 0)
                                           + by_op.get("aten.bmm", 0)) / matmul_s if matmul_s else None,
        "profile": prof,
    }
    print(f"threads {threads}; {work.samples} samples in {args.steps} optimizer steps; "
          f"{flops / 1e9:.1f} GFLOP per round")
    print(f"training: {achieved / 1e9:.1f} GFLOP/s (median of {args.repeats}); peak mm {PEAK_N}^2: "
          f"{peak / 1e9:.1f} GFLOP/s -> fraction {achieved / peak:.3f} (goal >= {GOAL})")
    print(f"mm at the model's shapes: {shape_rate / 1e9:.1f} GFLOP/s "
          f"({result['model_shape_mm_fraction_of_peak']:.2f} of peak); padding share {result['padding_share']:.3f}")
    print("where the time goes (profiler, self time):")
    for k, v in prof["share"].items():
        print(f"  {k:<45}{v:7.1%}")
    write_result("flops", result, args.out)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
