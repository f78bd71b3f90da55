"""Our training loop against the Hugging Face `Trainer`, side by side in one process.

    python benchmarks/trainer_vs_ours.py [--quick] [--n-train N] [--epochs E]

Three contenders train the same `Classifier` (the default study's embedded MiniLM-L6, top 4
layers trainable, max_len 64) on the same N training examples for E epochs, batch 16 x
grad-accum 2, with the same seed, threads, optimizer and schedule (ours: `build_optimizer`,
handed to Trainer as `optimizers=(opt, sched)`, so only the loop differs):

- ours: `contrastlab.train.train` itself (dynamic padding, length-grouped batches);
- Trainer "as the reference used it": every input padded to max_len (DataCollatorWithPadding,
  padding="max_length"), random sampler;
- Trainer "at its best": pad to the longest of the batch, `train_sampling_strategy=
  "group_by_length"` (transformers 5.x; `group_by_length=True` before).
Trainer runs with dataloader_num_workers=0, report_to="none", save/eval/logging off, no tqdm.

Interleaving: each contender is its own process (its main thread, torch.set_num_threads(
runtime.threads), as a training job runs) and they take turns: a coordinator hands the turn round
(ours, padded, grouped, ours, ...) and a contender gives it back every SEGMENT optimizer steps, so
only one computes at a time and a neighbour's load hits all of them alike. A contender's training
time is the sum of its turns from its first optimizer step to the end of its last (model building
and the test evaluation are not timed); its throughput is the median over its turns of samples /
turn time. The ratio judged is ours over each Trainer setting (also given: the ratio of total
training times). Each contender has its own seed and RNG, and the three samplers differ, so the
runs do not see the same batches: accuracy is compared within a tolerance, not for equality.

Accuracy: each trained model is evaluated on the same test examples with the same code
(`contrastlab.train.predict`). "Same accuracy" = within ACC_TOL (the 95% sampling interval of
the difference of two classifiers' accuracies on this many test examples, roughly).

Writes benchmarks/results/trainer_vs_ours.json.
"""
from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import multiprocessing as mp
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_cell, default_config, prepared_default, write_result  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import contrastlab.train as ours_train  # noqa: E402
from contrastlab.data import load_prepared  # noqa: E402
from contrastlab.model import load_tokenizer  # noqa: E402
from contrastlab.optim import build_optimizer  # noqa: E402

GOAL_PADDED, GOAL_GROUPED = 2.0, 1.0
SEGMENT = 4  # optimizer steps per turn


class Turns:
    """A contender's side of the round robin: it computes only between "go" and "yield".

    enter()     wait for the first turn (setup then runs untimed, holding the turn)
    start()     start the clock (at the first optimizer step)
    step(n)     one optimizer step of n samples; every SEGMENT steps the turn's time and samples
                are recorded and the turn is handed back to the coordinator
    stop()      record the last turn (the test evaluation that follows is not timed)
    """

    def __init__(self, conn, segment: int):
        self.conn, self.segment = conn, segment
        self.turns: list[tuple[float, int]] = []
        self._t0, self._samples, self._steps = 0.0, 0, 0

    def enter(self):
        self.conn.recv()

    def start(self):
        self._t0 = time.perf_counter()

    def _record(self):
        if self._samples:
            self.turns.append((time.perf_counter() - self._t0, self._samples))
        self._samples = 0

    def step(self, n_samples: int, last: bool = False):
        self._samples += n_samples
        self._steps += 1
        if last:
            self._record()
        elif self._steps % self.segment == 0:
            self._record()
            self.conn.send("yield")
            self.conn.recv()
            self._t0 = time.perf_counter()


def coordinate(conns: dict) -> dict:
    """Round robin over the contenders' pipes until each has sent its result."""
    active, i, results = list(conns), 0, {}
    while active:
        i %= len(active)
        name = active[i]
        conns[name].send("go")
        try:
            msg = conns[name].recv()
        except EOFError:
            msg = {"error": "the process died"}
        if msg == "yield":
            i += 1
        else:
            results[name] = msg
            active.remove(name)
    return results


class WithLoss(nn.Module):
    """What Trainer needs: forward returns {"loss", "logits"}; the loss is the baseline's CE."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.classifier(input_ids, attention_mask)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def run_ours(turns: Turns, cfg, prepared: Path, workdir: Path) -> dict:
    """`train()` itself, with a turn tick after each optimizer step."""
    real_step = ours_train._optimizer_step
    n_examples = len(load_prepared(prepared)[0]["train"])
    total = math.ceil(math.ceil(n_examples / cfg.train.batch_size) / cfg.train.grad_accum) * cfg.train.epochs
    count = {"steps": 0}

    def ticking(cfg_, model, optimizer, scheduler, trainable, group, *a, **k):
        if count["steps"] == 0:
            turns.start()
        row = real_step(cfg_, model, optimizer, scheduler, trainable, group, *a, **k)
        count["steps"] += 1
        turns.step(sum(len(i) for i in group), last=count["steps"] == total)
        return row

    ours_train._optimizer_step = ticking
    try:
        metrics = ours_train.train(cfg, prepared, workdir / "ours")
    finally:
        ours_train._optimizer_step = real_step
    return {"accuracy": metrics["accuracy"], "steps": metrics["steps"]}


def run_trainer(turns: Turns, cfg, prepared: Path, workdir: Path, grouped: bool) -> dict:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    data, names = load_prepared(prepared)
    tok = load_tokenizer(cfg.model.name)
    train_ds = Dataset.from_dict({"input_ids": data["train"]["input_ids"], "labels": list(data["train"]["label"])})
    t = cfg.train
    per_step = t.batch_size * t.grad_accum
    steps_per_epoch = math.ceil(math.ceil(len(train_ds) / t.batch_size) / t.grad_accum)
    classifier = ours_train.build(cfg, len(names), torch.device("cpu"))  # same seed, same init
    optimizer, scheduler = build_optimizer(classifier, t, steps_per_epoch * t.epochs)
    collator = (DataCollatorWithPadding(tok) if grouped else
                DataCollatorWithPadding(tok, padding="max_length", max_length=cfg.model.max_len))
    args = TrainingArguments(
        output_dir=str(workdir / ("grouped" if grouped else "padded")), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, num_train_epochs=t.epochs, max_grad_norm=t.max_grad_norm,
        seed=cfg.seed, use_cpu=True, dataloader_num_workers=0, dataloader_pin_memory=False,
        report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
        disable_tqdm=True, skip_memory_metrics=True,
        train_sampling_strategy="group_by_length" if grouped else "random")

    class Tick(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            turns.start()

        def on_step_end(self, args, state, control, **kw):
            in_epoch = (state.global_step - 1) % steps_per_epoch
            turns.step(min(per_step, len(train_ds) - in_epoch * per_step), last=state.global_step == state.max_steps)

    trainer = Trainer(model=WithLoss(classifier), args=args, train_dataset=train_ds, data_collator=collator,
                      optimizers=(optimizer, scheduler), callbacks=[Tick()])
    out = trainer.train()
    probs = ours_train.predict(classifier, data["test"]["input_ids"], tok.pad_token_id, "cpu", cfg.eval_batch_size)
    return {"accuracy": float((probs.argmax(1) == np.asarray(data["test"]["label"])).mean()),
            "steps": out.global_step, "trainer_reported_samples_per_s": out.metrics.get("train_samples_per_second")}


def contender(name: str, conn, cfg_dict: dict, prepared: str, workdir: str, threads: int) -> None:
    """Child process: one contender, in its process's main thread, as a training job runs."""
    from contrastlab.cellconfig import CellConfig

    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(threads)
    turns = Turns(conn, SEGMENT)
    try:
        turns.enter()
        cfg = CellConfig.from_dict(cfg_dict)
        if name == "ours":
            result = run_ours(turns, cfg, Path(prepared), Path(workdir))
        else:
            result = run_trainer(turns, cfg, Path(prepared), Path(workdir), grouped=name.endswith("grouped"))
        result["turns"] = turns.turns
    except BaseException as e:  # noqa: BLE001 - reported to the coordinator, never a deadlock
        result = {"error": repr(e)}
    conn.send(result)


def summarise(turns: list[tuple[float, int]]) -> dict:
    secs, samples = sum(t for t, _ in turns), sum(n for _, n in turns)
    return {"train_s": secs, "samples": samples, "samples_per_s": samples / secs,
            "median_turn_samples_per_s": statistics.median(n / t for t, n in turns), "turns": len(turns)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="96 examples, 1 epoch: a smoke test")
    ap.add_argument("--n-train", type=int, default=2000, help="training examples (stratified subset)")
    ap.add_argument("--n-test", type=int, default=1000, help="test examples (max_eval)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_test = 96, 64
    prepared = prepared_default(max_train=args.n_train, max_eval=args.n_test)
    cfg = default_cell("baseline", **{"train.epochs": args.epochs})
    names = ["ours", "trainer_padded", "trainer_grouped"]
    threads = default_config()["runtime"]["threads"]
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        pipes = {n: ctx.Pipe() for n in names}
        procs = [ctx.Process(target=contender, args=(n, pipes[n][1], cfg.to_dict(), str(prepared), tmp, threads))
                 for n in names]
        for p in procs:
            p.start()
        t0 = time.perf_counter()
        results = coordinate({n: pipes[n][0] for n in names})
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    if failed:
        raise SystemExit(f"contender failed: {failed}")
    for n in names:
        results[n].update(summarise(results[n].pop("turns")))
    n_test = args.n_test
    p = statistics.mean(r["accuracy"] for r in results.values())
    acc_tol = 1.96 * math.sqrt(2 * p * (1 - p) / n_test)
    ours = results["ours"]
    ratios = {}
    for n, goal in (("trainer_padded", GOAL_PADDED), ("trainer_grouped", GOAL_GROUPED)):
        r = results[n]
        ratio = ours["median_turn_samples_per_s"] / r["median_turn_samples_per_s"]
        d_acc = ours["accuracy"] - r["accuracy"]
        ratios[n] = {"ratio": ratio, "ratio_total_time": r["train_s"] / ours["train_s"] * ours["samples"] / r["samples"],
                     "goal": goal, "accuracy_diff": d_acc, "same_accuracy": abs(d_acc) <= acc_tol,
                     "met": ratio >= goal and abs(d_acc) <= acc_tol}
    summary = {"quick": args.quick, "n_train": args.n_train, "n_test": n_test, "epochs": args.epochs,
               "batch_size": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum, "max_len": cfg.model.max_len,
               "trainable_layers": cfg.model.trainable_layers, "threads": threads,
               "segment_steps": SEGMENT, "wall_s": wall, "accuracy_tolerance": acc_tol,
               "contenders": results, "ratios": ratios}
    print(f"{'contender':<18}{'samples/s':>10}{'(total)':>9}{'train s':>9}{'turns':>6}{'test acc':>10}")
    for n in names:
        r = results[n]
        print(f"{n:<18}{r['median_turn_samples_per_s']:>10.2f}{r['samples_per_s']:>9.2f}{r['train_s']:>9.1f}"
              f"{r['turns']:>6}{r['accuracy']:>10.4f}")
    for n, r in ratios.items():
        print(f"ours / {n}: {r['ratio']:.2f}x (goal >= {r['goal']}x), accuracy diff {r['accuracy_diff']:+.4f} "
              f"(tolerance {acc_tol:.4f}) -> {'MET' if r['met'] else 'MISSED'}")
    write_result("trainer_vs_ours", summary, args.out)


if __name__ == "__main__":
    main()
