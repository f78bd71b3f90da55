"""Embedding extraction: our `embed()` in bf16 and in fp32, and a plain loop over fixed-length
padded batches.

    python benchmarks/embed_speed.py [--quick] [--repeats R]

Every contender does the whole job from the same files: load the prepared split and the cell's
trained weights (a baseline cell's `weights.safetensors`, written once here), run the encoder in
eval mode without gradients, keep the final [CLS] of every example and write an .npz.
- ours, fp32 and bf16: `contrastlab.training.embed.embed` (length-sorted batches, each padded to its
  longest) with train.precision fp32 / bf16 (bf16: autocast, SDPA attention, every linear layer
  stored in bf16 since nothing trains: contrastlab.training.precision);
- plain (fp32): the usual loop: batches in dataset order, every input padded to max_len.
Same batch size (runtime.eval_batch_size 64), same threads (runtime.threads).

Cases: the default study's test split (snippets, max_len 64), and a long-text case made from the
same corpus by concatenating 1-12 snippets of one label per example (max_len 256), where padding
to max_len wastes more. Interleaved repeats, median time each. Ratios: ours fp32 over the plain
loop (samples/s; >= 1 is the bar: ours should never be slower; the max |difference| of the [CLS]
vectors checks both compute the same thing), and ours bf16 over ours fp32 (with the smallest
cosine similarity between an example's bf16 and fp32 [CLS]: how much bf16 moves them).

Writes benchmarks/results/embed_speed.json.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from _common import (CACHE, arguments, default_cell, default_runtime, initial_weights, interleaved, prepared_default,
                     write_result)

import numpy as np
import pandas as pd
import torch

from contrastlab.plan.config import DataConfig, ProbeConfig
from contrastlab.data.splits import prepare
from contrastlab.training.embed import embed
from contrastlab.operations.io import atomic_path
from contrastlab.training.model import load_tokenizer, load_trained
from contrastlab.data.prepared import load_prepared

GOAL = 1.0  # ours (fp32) over the plain loop: not set by the issue; ours should never be slower
BATCH = 64
LONG_MAX_LEN = 256


def long_texts_prepared(n: int, seed: int = 0) -> Path:
    """A prepared dataset of long reviews: each row joins 1-12 snippets of one label (max_len 256)."""
    out = CACHE / f"prepared-v2-long{n}-len{LONG_MAX_LEN}"
    if (out / "labels.json").exists():
        return out
    short = prepared_default()
    names = load_prepared(short).names
    df = pd.read_csv(short / "train.csv")  # row, label (class id), text
    rng = np.random.default_rng(seed)
    texts, labels = df["text"].to_numpy(dtype=object), df["label"].to_numpy()
    rows = []
    for _ in range(n * 2):  # half become train/val (unused), the test split gets the rest
        y = int(rng.integers(len(names)))
        pick = rng.choice(np.flatnonzero(labels == y), int(rng.integers(1, 13)), replace=False)
        rows.append({"text": " ".join(texts[pick]), "label": names[y]})
    CACHE.mkdir(parents=True, exist_ok=True)
    csv = CACHE / f"long{n}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    cfg = DataConfig(source="files", files={"train": str(csv)}, labels=list(names), test_fraction=0.5, max_eval=n)
    prepare(cfg, load_tokenizer(default_cell().model.name), LONG_MAX_LEN, out)
    return out


def plain_embed(cfg, prepared: Path, weights: Path, out_path: Path, max_len: int, split: str = "test") -> None:
    """The loop a researcher writes first: dataset order, every batch padded to max_len, fp32."""
    data = load_prepared(prepared)
    ids, labels = data.splits[split].ids, data.splits[split].labels
    model = load_trained(cfg.model, weights, len(data.names), torch.device("cpu"))
    pad = data.summary["pad_id"]
    cls = []
    with torch.no_grad():
        for s in range(0, len(ids), BATCH):
            chunk = ids[s:s + BATCH]
            x = torch.full((len(chunk), max_len), pad, dtype=torch.long)
            m = torch.zeros_like(x)
            for r, seq in enumerate(chunk):
                x[r, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                m[r, :len(seq)] = 1
            cls.append(model.encode(x, m).last_hidden_state[:, 0].numpy())
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, cls=np.concatenate(cls), labels=labels)


def run_case(name: str, cfgs: dict, prepared: Path, weights: Path, max_len: int, repeats: int, tmp: Path) -> dict:
    data = load_prepared(prepared)
    n = len(data.splits["test"])
    lengths = np.array([len(s) for s in data.splits["test"].ids])
    runtime = default_runtime(eval_batch_size=BATCH)
    probe = ProbeConfig(split="test", max_samples=None, layers=[])
    outs = {k: tmp / f"{name[:8]}-{k}.npz" for k in ("fp32", "bf16", "plain")}
    timed = interleaved({
        "ours_fp32": lambda: embed(cfgs["fp32"], probe, runtime, prepared, weights, outs["fp32"]),
        "ours_bf16": lambda: embed(cfgs["bf16"], probe, runtime, prepared, weights, outs["bf16"]),
        "plain": lambda: plain_embed(cfgs["fp32"], prepared, weights, outs["plain"], max_len),
    }, repeats=repeats, warmup=0, rotate=True)
    a, b, p = (np.load(outs[k])["cls"] for k in ("fp32", "bf16", "plain"))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    t = {k: v["median_s"] for k, v in timed.items()}
    ratio = t["plain"] / t["ours_fp32"]
    return {"case": name, "n": n, "max_len": max_len, "mean_tokens": float(lengths.mean()),
            "max_tokens": int(lengths.max()), "padding_share_plain": float(1 - lengths.mean() / max_len),
            "times_s": {k: v["times_s"] for k, v in timed.items()},
            "ours_samples_per_s": n / t["ours_fp32"], "ours_bf16_samples_per_s": n / t["ours_bf16"],
            "plain_samples_per_s": n / t["plain"], "ratio": ratio,
            "bf16_over_fp32": t["ours_fp32"] / t["ours_bf16"],
            "max_abs_diff": float(np.abs(a - p).max()), "bf16_max_abs_diff": float(np.abs(a - b).max()),
            "bf16_min_cosine": float(cos.min()), "goal": GOAL, "met": ratio >= GOAL}


def main() -> None:
    ap = arguments(__doc__, "64 examples per case, 1 repeat: a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-short", type=int, default=500)
    ap.add_argument("--n-long", type=int, default=128)
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.n_short, args.n_long = 1, 64, 64
    torch.set_num_threads(default_runtime().threads)
    cfgs = {p: default_cell("baseline", **{"train.precision": p}) for p in ("fp32", "bf16")}
    long_cfgs = {p: default_cell("baseline", **{"train.precision": p, "model.max_len": LONG_MAX_LEN})
                 for p in ("fp32", "bf16")}
    short = prepared_default(max_eval=args.n_short)
    long_ = long_texts_prepared(args.n_long)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = initial_weights(cfgs["fp32"], tmp / "weights.safetensors")
        cases.append(run_case("snippets (test split)", cfgs, short, weights, cfgs["fp32"].model.max_len,
                              args.repeats, tmp))
        cases.append(run_case("long texts (1-12 snippets joined)", long_cfgs, long_, weights, LONG_MAX_LEN,
                              args.repeats, tmp))
    print(f"{'case':<36}{'n':>5}{'mean tok':>9}{'max_len':>8}{'fp32/s':>9}{'bf16/s':>9}{'plain/s':>9}"
          f"{'fp32/plain':>11}{'bf16/fp32':>10}{'max diff':>10}{'min cos bf16':>13}")
    for c in cases:
        print(f"{c['case']:<36}{c['n']:>5}{c['mean_tokens']:>9.1f}{c['max_len']:>8}{c['ours_samples_per_s']:>9.1f}"
              f"{c['ours_bf16_samples_per_s']:>9.1f}{c['plain_samples_per_s']:>9.1f}{c['ratio']:>10.2f}x"
              f"{c['bf16_over_fp32']:>9.2f}x{c['max_abs_diff']:>10.1e}{c['bf16_min_cosine']:>13.4f}")
    write_result("embed_speed", {"quick": args.quick, "repeats": args.repeats, "batch_size": BATCH,
                                 "threads": torch.get_num_threads(), "cases": cases,
                                 "met": all(c["met"] for c in cases)}, args.out)


if __name__ == "__main__":
    main()
