"""What each idea for a faster default grid would gain on a CPU without native bf16 (issue #20).

    python benchmarks/grid_speedups.py [--quick] [--only frozen threads compile buckets] [--steps S] [--repeats R]

Run it on such a CPU as it is; on a CPU with native bf16 it re-executes itself with oneDNN, torch
and MKL capped at AVX2 (contrastlab.training.native.AVX2_ONLY), as on an AVX2-only CPU, where
train.precision: auto runs fp32. Workload: the default baseline cell (config.yaml) on the default
prepared data, real optimizer steps of epoch 0 (contrastlab.training.train.Trainer.step), fp32.

- frozen: with `model.trainable_layers: 4` of 6, the embeddings and the 2 lowest layers get the same
  input every epoch; caching their output would remove their forward pass from every step. Measured:
  the whole step against that frozen forward alone (no_grad), on the same steps, interleaved;
  the gain is step / (step - frozen) for a cell that could use the cache (not LoRA cells).
- threads: one job on 2 threads against two 1-thread jobs side by side (separate processes started
  together), each running the same S steps; examples/s of the machine.
- compile: runtime.compile (torch.compile of the encoder's forward, dynamic shapes) against eager,
  in one process: the first step (with the compile), then the same steps alternately.
- buckets: the length-grouped steps `train` uses (contrastlab.training.batching.epoch_steps) against
  uniformly random steps of the same size: padded tokens per epoch and step time.

Writes benchmarks/results/grid_speedups.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import arguments, cpu_bf16, default_cell, default_runtime, prepared_default, write_result

import numpy as np
import torch

from contrastlab.training.batching import collate, epoch_steps
from contrastlab.training.model import find_layers
from contrastlab.training.native import AVX2_ONLY
from contrastlab.data.prepared import load_prepared
from contrastlab.training.train import Trainer

IDEAS = ["frozen", "threads", "buckets", "compile"]


def setup(threads: int):
    torch.set_num_threads(threads)
    data = load_prepared(prepared_default())
    cfg = default_cell("baseline", **{"train.precision": "fp32"})
    runtime = default_runtime(threads=threads)
    eff = cfg.train.batch_size * cfg.train.grad_accum
    steps = epoch_steps([len(s) for s in data.splits["train"].ids], eff, cfg.seed, 0)
    return data, cfg, runtime, steps


def frozen(steps_n: int, repeats: int) -> dict:
    data, cfg, runtime, steps = setup(2)
    t = Trainer(cfg, runtime, data, torch.device("cpu"), len(steps))
    split, enc = data.splits["train"], t.model.encoder
    low = find_layers(enc)[: enc.config.num_hidden_layers - cfg.model.trainable_layers]
    chunk = steps[:steps_n]
    counter = [0]

    def step():
        for idx in chunk:
            counter[0] += 1
            t.step(idx, 0, counter[0])

    @torch.no_grad()
    def frozen_part():  # the encoder cut to its frozen layers: the embeddings and their forward
        layers = find_layers(enc)
        n = len(layers)
        kept = list(layers)
        del layers[len(low):]
        try:
            for idx in chunk:
                b = collate(split.ids, idx, t.pad_id, split.labels)
                enc(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        finally:
            layers.extend(kept[len(low):])
        assert len(layers) == n

    times = {"step": [], "frozen": []}
    step(), frozen_part()  # warm-up
    for _ in range(repeats):
        for name, fn in (("step", step), ("frozen", frozen_part)):
            s = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - s)
    st, fr = statistics.median(times["step"]), statistics.median(times["frozen"])
    return {"frozen_layers": len(low), "step_s": st / steps_n, "frozen_forward_s": fr / steps_n,
            "frozen_share": fr / st, "gain_per_cell": st / (st - fr), "times_s": times}


def worker(threads: int, steps_n: int) -> None:
    """One job of the threads idea: prints its examples/s over `steps_n` steps after a warm-up."""
    data, cfg, runtime, steps = setup(threads)
    t = Trainer(cfg, runtime, data, torch.device("cpu"), len(steps))
    t.step(steps[-1], 0, 1)
    s, n = time.perf_counter(), 0
    for i, idx in enumerate(steps[:steps_n]):
        t.step(idx, 0, i + 2)
        n += len(idx)
    print(json.dumps({"threads": threads, "examples_per_s": n / (time.perf_counter() - s)}))


def threads(steps_n: int, repeats: int) -> dict:
    def jobs(n_jobs: int, n_threads: int) -> float:
        cmd = [sys.executable, __file__, "--worker", str(n_threads), "--steps", str(steps_n)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n_jobs)]
        rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["examples_per_s"] for p in procs]
        return sum(rates)

    runs = {"one 2-thread job": [], "two 1-thread jobs": []}
    for _ in range(repeats):
        runs["one 2-thread job"].append(jobs(1, 2))
        runs["two 1-thread jobs"].append(jobs(2, 1))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"examples_per_s": runs, "median": med, "two_1thread_over_one_2thread":
            med["two 1-thread jobs"] / med["one 2-thread job"]}


def compile_(steps_n: int, repeats: int) -> dict:
    """Eager and compiled Trainers in one process: the compiled one's first step (the compile),
    then both given the same steps, alternately."""
    data, cfg, runtime, steps = setup(2)
    trainers = {name: Trainer(cfg, default_runtime(threads=2, compile=on), data, torch.device("cpu"), len(steps))
                for name, on in (("eager", False), ("compile", True))}
    out = {name: {"times_s": []} for name in trainers}
    for name, t in trainers.items():
        s = time.perf_counter()
        t.step(steps[-1], 0, 1)
        out[name]["first_step_s"] = time.perf_counter() - s
    for i, idx in enumerate(steps[: steps_n * repeats]):
        for name in (list(trainers) if i % 2 == 0 else list(trainers)[::-1]):
            s = time.perf_counter()
            trainers[name].step(idx, 0, i + 2)
            out[name]["times_s"].append(time.perf_counter() - s)
    for r in out.values():
        r["median_step_s"] = statistics.median(r["times_s"])
    out["compiled_over_eager_step"] = out["compile"]["median_step_s"] / out["eager"]["median_step_s"]
    return out


def buckets(steps_n: int, repeats: int) -> dict:
    data, cfg, runtime, steps = setup(2)
    lengths = np.asarray([len(s) for s in data.splits["train"].ids])
    eff = len(steps[0])
    rng = np.random.default_rng(0)
    random_steps = [p for p in np.array_split(rng.permutation(len(lengths)), len(steps))]

    def padded(ss):
        return int(sum(len(s) * lengths[s].max() for s in ss))

    t = Trainer(cfg, runtime, data, torch.device("cpu"), len(steps))
    counter = [0]

    def run(ss):
        def go():
            for idx in ss:
                counter[0] += 1
                t.step(idx, 0, counter[0])
        return go

    chunks = {"grouped": steps[:steps_n], "random": random_steps[:steps_n]}
    times = {k: [] for k in chunks}
    for _ in range(repeats):
        for k, ss in chunks.items():
            s = time.perf_counter()
            run(ss)()
            times[k].append(time.perf_counter() - s)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"step_size": eff, "tokens": int(lengths.sum()), "padded_tokens": {"grouped": padded(steps),
            "random": padded(random_steps)}, "median_s": med, "times_s": times,
            "random_over_grouped_time": med["random"] / med["grouped"]}


def main() -> None:
    ap = arguments(__doc__, "frozen and buckets, 1 step x 1 round: a smoke test")
    ap.add_argument("--only", nargs="*", default=IDEAS, choices=IDEAS)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)
    if args.quick:
        args.only, args.steps, args.repeats = ["frozen", "buckets"], 1, 1
    host = cpu_bf16()
    if host["native"]:  # emulate an AVX2-only CPU (see above)
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], {**os.environ, **AVX2_ONLY})
    results = {}
    for idea in args.only:
        s = time.perf_counter()
        results[idea] = {"frozen": frozen, "threads": threads, "compile": compile_, "buckets": buckets}[idea](
            args.steps, args.repeats)
        results[idea]["wall_s"] = time.perf_counter() - s
        print(idea, json.dumps({k: v for k, v in results[idea].items() if "times" not in k and k != "examples_per_s"}),
              flush=True)
    write_result("grid_speedups", {"bf16": host, "steps": args.steps, "repeats": args.repeats, **results}, args.out)


if __name__ == "__main__":
    main()
