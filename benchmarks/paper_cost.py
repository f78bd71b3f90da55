"""What the paper preset (config/paper.yaml) costs on one GPU: an ESTIMATE from counted FLOPs and
assumed GPU rates, until the GPU check (tools/gpu-check) measures them.

    python benchmarks/paper_cost.py [--quick]

FLOPs: torch.utils.flop_counter over one real `Trainer.step` (2 examples that fill the cell's
max_len) of each distinct kind of cell of the preset (family, max_len, LoRA, stages, views, level:
the sweeps over alpha, k, tau or layer sets change the FLOPs by a fraction of a percent), on a
random-init model of DeBERTa-v3-base's shapes (contrastlab.training.random_model), and over one forward
pass for evaluation. Counted on the CPU: FLOPs depend on shapes only. Per cell x seed:
3 epochs x 20,000 training reviews (IMDB's 25,000 less 20% validation) plus forward passes over
3 x 5,000 validation, 25,000 test and 5,000 embedded reviews; a cell given another's budget
(train.match_budget) trains and validates steps_scale times as long. Every review is taken to fill
max_len, an upper bound: most IMDB reviews fill 256 tokens, fewer fill 510.

GPU time at two rates: the 58 TFLOP/s that issue 22 measured for the baseline's bf16 step (32 x 1)
on an H200 (7% of its ~790 TFLOP/s bf16 peak), and the issue's goal of 25% of that peak; plus
15 s of start-up per GPU job (issue 22: 20-30 s jobs with 6-14 s of training), two GPU jobs
(train, embed) per cell x seed. Writes benchmarks/results/paper_cost.json.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from _common import CACHE, REPO, write_result

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from flop_formulas import CUSTOM_FLOPS
from contrastlab.training.batching import collate
from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
from contrastlab.data.splits import prepare
from contrastlab.training.model import load_tokenizer
from contrastlab.plan.plan_cost import EPOCHS, JOB_START_S, N_EMBED, N_TEST, N_TRAIN, N_VAL, RATES, kind
from contrastlab.data.prepared import load_prepared
from contrastlab.training.random_model import make_random_deberta
from contrastlab.plan.study import plan
from contrastlab.training.train import Trainer


def long_csv(path: Path, n: int = 40) -> Path:
    import pandas as pd

    from contrastlab.data.sources import embedded_path

    df = pd.read_csv(embedded_path()).dropna()
    texts = df.loc[df["category"] != "plot", "text"].tolist()
    rows = [{"text": " ".join(texts[i * 60:(i + 1) * 60]), "label": ("fresh", "rotten")[i % 2]} for i in range(n)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def count(cell: CellConfig, model_dir: Path, prepared: Path) -> tuple[float, float]:
    """(FLOPs per training example, FLOPs per evaluated example) of `cell` at its max_len."""
    d = cell.model_dump()
    d["model"]["name"] = str(model_dir)
    d["train"].update(batch_size=2, grad_accum=1, micro_batch="auto", precision="fp32")
    cfg = CellConfig.model_validate(d)
    data = load_prepared(prepared)
    trainer = Trainer(cfg, RuntimeConfig(device="cpu"), data, torch.device("cpu"), total_steps=10)
    split = data.splits["train"]
    idx = next(i for i in __import__("itertools").combinations(range(len(split)), 2)
               if split.labels[i[0]] == split.labels[i[1]])  # two of one label: every contrastive term has positives
    import numpy as np

    idx = np.asarray(idx)
    assert all(len(split.ids[i]) == cfg.model.max_len for i in idx), "the texts must fill max_len"
    with FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
        trainer.step(idx, 0, 1)
    train_flops = counter.get_total_flops() / len(idx)
    batch = collate(split.ids, idx, data.summary["pad_id"])
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
        trainer.model(batch["input_ids"], batch["attention_mask"])
    return train_flops, counter.get_total_flops() / len(idx)


def run_flop(f_train: float, f_eval: float, steps_scale: float = 1.0) -> float:
    """FLOPs of one cell x seed: its training steps (steps_scale x the epochs: train.match_budget) and a
    validation after each epoch's worth of steps, the test and the embedding."""
    epochs = EPOCHS * steps_scale
    return epochs * N_TRAIN * f_train + (math.ceil(epochs) * N_VAL + N_TEST + N_EMBED) * f_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the baseline kind only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    study = plan(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()), "config/paper.yaml")
    cells = [c for c in study.cells]
    model_dir = CACHE / "deberta-v3-base-random"
    if not (model_dir / "config.json").exists():
        make_random_deberta(model_dir, "deberta-v3-base")
    tok = load_tokenizer(str(model_dir))
    csv = long_csv(CACHE / "paper_cost_long.csv")
    prepared = {}
    kinds: dict[tuple, dict] = {}
    for c in cells:
        k = kind(c.config)
        kinds.setdefault(k, {"cells": set(), "runs": 0, "example": c.config})
        kinds[k]["cells"].add(c.name)
        kinds[k]["runs"] += 1
    rows = []
    for k, v in kinds.items():
        if args.quick and k[0] != "baseline":
            continue
        max_len = v["example"].model.max_len
        if max_len not in prepared:
            prepared[max_len] = CACHE / f"paper_cost_prepared_{max_len}"
            if not prepared[max_len].exists():
                prepare(DataConfig(source="files", files={"train": str(csv)}, val_fraction=0.1, test_fraction=0.1),
                        tok, max_len, prepared[max_len])
        f_train, f_eval = count(v["example"], model_dir, prepared[max_len])
        per_run = run_flop(f_train, f_eval, v["example"].train.steps_scale)
        rows.append({"kind": dict(zip(["family", "max_len", "lora", "stages", "views", "level", "proj", "steps_scale"], k)),
                     "cells": sorted(v["cells"]), "runs": v["runs"], "train_flop_per_example": f_train,
                     "eval_flop_per_example": f_eval, "flop_per_run": per_run})
        print(f"{k}: {len(v['cells'])} cells, {v['runs']} runs; {f_train / 1e9:.0f} GFLOP per training example, "
              f"{f_eval / 1e9:.0f} per evaluated one; {per_run / 1e15:.0f} PFLOP per run", flush=True)
    total = sum(r["flop_per_run"] * r["runs"] for r in rows)
    runs = sum(r["runs"] for r in rows)
    hours = {name: total / rate / 3600 + 2 * runs * JOB_START_S / 3600 for name, rate in RATES.items()}
    write_result("paper_cost", {"rows": rows, "runs": runs, "total_flop": total, "gpu_hours": hours,
                                "rates": RATES, "job_start_s": JOB_START_S, "quick": args.quick,
                                "counts": {"epochs": EPOCHS, "train": N_TRAIN, "val": N_VAL, "test": N_TEST,
                                           "embed": N_EMBED}})
    for name, h in hours.items():
        print(f"{runs} runs, {total / 1e18:.2f} EFLOP: {h:.1f} GPU-hours at {name}")


if __name__ == "__main__":
    main()
