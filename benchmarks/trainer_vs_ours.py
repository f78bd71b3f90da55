"""Our training loop against the Hugging Face `Trainer`, side by side, in fp32 and in bf16.

    python benchmarks/trainer_vs_ours.py [--quick] [--n-train N] [--epochs E] [--batch 32x1]

Every contender trains the same `Classifier` (the default study's embedded MiniLM-L6, top 4
layers trainable, max_len 64) on the same N training examples for E epochs, with config.yaml's
batch (its batch_size x grad_accum unless --batch), the same seed, threads, optimizer and
schedule (ours: `contrastlab.training.optim.build_optimizer`, handed to Trainer as
`optimizers=(opt, sched)`, so only the loop differs):

fp32 (train.precision fp32; Trainer without bf16):
- ours: `contrastlab.training.train.train` itself (dynamic padding, length-grouped steps);
- Trainer "as the reference used it": every input padded to max_len (DataCollatorWithPadding,
  padding="max_length"), random sampler;
- Trainer "at its best": pad to the longest of the batch, `train_sampling_strategy=
  "group_by_length"` (transformers 5.x; `group_by_length=True` before).
bf16:
- ours bf16: `train` with train.precision bf16 (autocast; on the CPU eager attention and the
  frozen linear layers stored in bf16: contrastlab.training.precision);
- Trainer bf16 at its best: `bf16=True`, dynamic padding + group_by_length, and the Trainer's own
  choices otherwise: the model as a user builds it (transformers' default SDPA attention,
  float32 weights), autocast by the Trainer (accelerate);
- Trainer bf16 at its best, given our bf16 model set-up (eager attention, frozen linears stored
  in bf16): not judged; it separates what the loop does from what the model set-up does.
Trainer runs with dataloader_num_workers=0, report_to="none", save/eval/logging off, no tqdm.

Interleaving: each contender is its own process (its main thread, torch.set_num_threads(
runtime.threads), as a training job runs) and they take turns: a coordinator hands the turn round
(ours, padded, grouped, ours bf16, ..., ours, ...) and a contender gives it back every SEGMENT
optimizer steps, so only one computes at a time and a neighbour's load hits all of them alike. A
contender's training time is the sum of its turns from its first optimizer step to the end of its
last (model building and the test evaluation are not timed); its throughput is the median over
its turns of samples / turn time. The ratios judged are ours over each Trainer setting of the same
precision (also given: the ratio of total training times). Each contender has its own seed and
RNG, and the samplers differ, so the runs do not see the same batches: accuracy is compared
within a tolerance, not for equality.

Accuracy: each trained model is evaluated on the same test examples with the same batching
(contrastlab.training.batching.eval_batches, autocast as in training): ours by `train` itself
(Trainer.predict), the HF models by the same loop here. "Same accuracy" = within ACC_TOL (the 95%
sampling interval of the difference of two classifiers' accuracies on this many test examples,
roughly).

Writes benchmarks/results/trainer_vs_ours.json.
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from _common import arguments, cell_paths, default_cell, default_runtime, prepared_default, split_of, write_result

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import contrastlab.training.train as ours_train
from contrastlab.training.batching import collate, eval_batches
from contrastlab.training.jobmodel import job_model, seed_everything
from contrastlab.training.model import build_classifier, load_tokenizer
from contrastlab.training.optim import build_optimizer
from contrastlab.data.prepared import load_prepared

SEGMENT = 4  # optimizer steps per turn
# name -> (label, precision, kind); kind: ours | padded | grouped | grouped_our_model
CONTENDERS = {
    "ours": ("ours (`train`), fp32", "fp32", "ours"),
    "trainer_padded": ("Trainer fp32, padded to max_len (reference)", "fp32", "padded"),
    "trainer_grouped": ("Trainer fp32, dynamic padding + group_by_length", "fp32", "grouped"),
    "ours_bf16": ("ours (`train`), bf16", "bf16", "ours"),
    "trainer_grouped_bf16": ("Trainer bf16=True, dynamic padding + group_by_length", "bf16", "grouped"),
    "trainer_grouped_bf16_our_model": ("Trainer bf16=True, grouped, our bf16 model set-up (not judged)", "bf16",
                                       "grouped_our_model"),
}
# (ours, Trainer, goal, what)
RATIOS = [("ours", "trainer_padded", 2.0, "fp32: Trainer as the reference used it"),
          ("ours", "trainer_grouped", 1.0, "fp32: Trainer at its best"),
          ("ours_bf16", "trainer_grouped_bf16", 1.0, "bf16: Trainer bf16=True at its best"),
          ("ours_bf16", "trainer_grouped_bf16_our_model", None, "bf16: Trainer bf16=True, our model set-up")]


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


def run_ours(turns: Turns, cfg, runtime, prepared: Path, workdir: Path) -> dict:
    """`train()` itself, with a turn tick after each optimizer step (Trainer.step)."""
    n_examples = len(load_prepared(prepared).splits["train"])
    effective = cfg.train.batch_size * cfg.train.grad_accum
    total = cfg.train.max_steps or cfg.train.epochs * math.ceil(n_examples / effective)
    real_step = ours_train.Trainer.step
    count = {"steps": 0}

    def ticking(self, idx, epoch, step):
        if count["steps"] == 0:
            turns.start()
        row = real_step(self, idx, epoch, step)
        count["steps"] += 1
        turns.step(len(idx), last=count["steps"] == total)
        return row

    ours_train.Trainer.step = ticking
    try:
        out, state = cell_paths(workdir / f"ours-{cfg.train.precision}", cfg.cell, cfg.seed)
        metrics = ours_train.train(cfg, runtime, prepared, out, state)
    finally:
        ours_train.Trainer.step = real_step
    return {"accuracy": metrics["accuracy"], "steps": metrics["steps"]}


@torch.inference_mode()
def evaluate(model, split, pad_id: int, precision: str, batch_size: int) -> float:
    """Test accuracy with the batching of contrastlab's Trainer.predict (autocast in bf16)."""
    model.eval()
    preds = np.zeros(len(split), dtype=np.int64)
    for idx in eval_batches([len(s) for s in split.ids], batch_size):
        batch = collate(split.ids, idx, pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(batch["input_ids"], batch["attention_mask"])
        preds[idx] = logits.float().argmax(-1).numpy()
    return float(np.mean(preds == split.labels))


def run_trainer(turns: Turns, cfg, runtime, prepared: Path, workdir: Path, kind: str) -> dict:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    data = load_prepared(prepared)
    train_split = data.splits["train"]
    tok = load_tokenizer(cfg.model.name)
    train_ds = Dataset.from_dict({"input_ids": [s.tolist() for s in train_split.ids],
                                  "labels": train_split.labels.tolist()})
    t = cfg.train
    per_step = t.batch_size * t.grad_accum
    steps_per_epoch = math.ceil(math.ceil(len(train_ds) / t.batch_size) / t.grad_accum)
    bf16 = t.precision == "bf16"
    if kind == "grouped_our_model":  # our job's model set-up (bf16: eager attention, frozen linears in bf16)
        classifier = job_model(cfg, runtime, torch.device("cpu"), len(data.names)).model
    else:  # the model as a user builds it, with the same seed and so the same initialisation as ours
        seed_everything(cfg.seed)
        classifier = build_classifier(cfg.model, len(data.names))
    opt = build_optimizer(classifier, t, steps_per_epoch * t.epochs)
    collator = (DataCollatorWithPadding(tok, padding="max_length", max_length=cfg.model.max_len) if kind == "padded"
                else DataCollatorWithPadding(tok))
    args = TrainingArguments(
        output_dir=str(workdir / f"{kind}-{t.precision}"), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, num_train_epochs=t.epochs, max_grad_norm=t.max_grad_norm,
        seed=cfg.seed, use_cpu=True, bf16=bf16, dataloader_num_workers=0, dataloader_pin_memory=False,
        report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
        disable_tqdm=True, skip_memory_metrics=True,
        train_sampling_strategy="random" if kind == "padded" else "group_by_length")

    class Tick(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            turns.start()

        def on_step_end(self, args, state, control, **kw):
            in_epoch = (state.global_step - 1) % steps_per_epoch
            turns.step(min(per_step, len(train_ds) - in_epoch * per_step), last=state.global_step == state.max_steps)

    trainer = Trainer(model=WithLoss(classifier), args=args, train_dataset=train_ds, data_collator=collator,
                      optimizers=(opt.optimizer, opt.scheduler), callbacks=[Tick()])
    out = trainer.train()
    accuracy = evaluate(classifier, data.splits["test"], data.summary["pad_id"], t.precision, runtime.eval_batch_size)
    return {"accuracy": accuracy, "steps": out.global_step,
            "trainer_reported_samples_per_s": out.metrics.get("train_samples_per_second")}


def contender(name: str, conn, cfg_dict: dict, runtime_dict: dict, prepared: str, workdir: str) -> None:
    """Child process: one contender, in its process's main thread, as a training job runs."""
    from contrastlab.plan.config import CellConfig, RuntimeConfig

    logging.getLogger("transformers").setLevel(logging.ERROR)
    runtime = RuntimeConfig.model_validate(runtime_dict)
    torch.set_num_threads(runtime.threads)
    turns = Turns(conn, SEGMENT)
    try:
        turns.enter()
        cfg = CellConfig.model_validate(cfg_dict)
        kind = CONTENDERS[name][2]
        if kind == "ours":
            result = run_ours(turns, cfg, runtime, Path(prepared), Path(workdir))
        else:
            result = run_trainer(turns, cfg, runtime, Path(prepared), Path(workdir), kind)
        result["turns"] = turns.turns
    except BaseException as e:  # noqa: BLE001 - reported to the coordinator, never a deadlock
        import traceback

        result = {"error": repr(e), "traceback": traceback.format_exc()[-3000:]}
    conn.send(result)


def summarise(turns: list[tuple[float, int]]) -> dict:
    secs, samples = sum(t for t, _ in turns), sum(n for _, n in turns)
    return {"train_s": secs, "samples": samples, "samples_per_s": samples / secs,
            "median_turn_samples_per_s": statistics.median(n / t for t, n in turns), "turns": len(turns)}


def main() -> None:
    ap = arguments(__doc__, "96 examples, 1 epoch: a smoke test")
    ap.add_argument("--n-train", type=int, default=2000, help="training examples (stratified subset)")
    ap.add_argument("--n-test", type=int, default=1000, help="test examples (max_eval)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", default=None, help="BxA: batch_size x grad_accum (default: config.yaml's)")
    ap.add_argument("--only", nargs="*", default=None, help=f"contenders (default: all of {', '.join(CONTENDERS)})")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_test = 96, 64
    prepared = prepared_default(max_train=args.n_train, max_eval=args.n_test)
    base = default_cell("baseline")
    b, a = split_of(args.batch) if args.batch else (base.train.batch_size, base.train.grad_accum)
    cfgs = {p: default_cell("baseline", **{"train.epochs": args.epochs, "train.batch_size": b, "train.grad_accum": a,
                                           "train.precision": p}) for p in ("fp32", "bf16")}
    runtime = default_runtime(log_every=10_000)
    names = [n for n in CONTENDERS if not args.only or n in args.only]
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        pipes = {n: ctx.Pipe() for n in names}
        procs = [ctx.Process(target=contender, args=(n, pipes[n][1], cfgs[CONTENDERS[n][1]].model_dump(),
                                                     runtime.model_dump(), str(prepared), tmp)) for n in names]
        for p in procs:
            p.start()
        t0 = time.perf_counter()
        results = coordinate({n: pipes[n][0] for n in names})
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
    failed = {n: r for n, r in results.items() if "error" in r}
    if failed:
        for n, r in failed.items():
            print(f"{n}: {r.get('traceback', r['error'])}")
        raise SystemExit(f"contender failed: {', '.join(failed)}")
    for n in names:
        results[n].update(summarise(results[n].pop("turns")), label=CONTENDERS[n][0], precision=CONTENDERS[n][1])
    n_test = len(load_prepared(prepared).splits["test"])
    p = statistics.mean(r["accuracy"] for r in results.values())
    acc_tol = 1.96 * math.sqrt(2 * p * (1 - p) / n_test)
    ratios = {}
    for ours_name, other, goal, what in RATIOS:
        if ours_name not in results or other not in results:
            continue
        ours, r = results[ours_name], results[other]
        ratio = ours["median_turn_samples_per_s"] / r["median_turn_samples_per_s"]
        d_acc = ours["accuracy"] - r["accuracy"]
        ratios[other] = {"ours": ours_name, "what": what, "ratio": ratio,
                         "ratio_total_time": r["train_s"] / ours["train_s"] * ours["samples"] / r["samples"],
                         "goal": goal, "accuracy_diff": d_acc, "same_accuracy": abs(d_acc) <= acc_tol,
                         "met": None if goal is None else (ratio >= goal and abs(d_acc) <= acc_tol)}
    if "ours" in results and "ours_bf16" in results:
        ratios["ours_bf16_over_ours_fp32"] = {
            "ours": "ours_bf16", "what": "ours bf16 over ours fp32", "goal": None, "met": None,
            "ratio": results["ours_bf16"]["median_turn_samples_per_s"] / results["ours"]["median_turn_samples_per_s"],
            "ratio_total_time": results["ours"]["train_s"] / results["ours_bf16"]["train_s"]
            * results["ours_bf16"]["samples"] / results["ours"]["samples"],
            "accuracy_diff": results["ours_bf16"]["accuracy"] - results["ours"]["accuracy"],
            "same_accuracy": abs(results["ours_bf16"]["accuracy"] - results["ours"]["accuracy"]) <= acc_tol}
    summary = {"quick": args.quick, "n_train": args.n_train, "n_test": n_test, "epochs": args.epochs,
               "batch_size": b, "grad_accum": a, "max_len": base.model.max_len,
               "trainable_layers": base.model.trainable_layers, "threads": runtime.threads,
               "segment_steps": SEGMENT, "wall_s": wall, "accuracy_tolerance": acc_tol,
               "contenders": results, "ratios": ratios}
    print(f"{'contender':<32}{'samples/s':>10}{'(total)':>9}{'train s':>9}{'turns':>6}{'test acc':>10}")
    for n in names:
        r = results[n]
        print(f"{n:<32}{r['median_turn_samples_per_s']:>10.2f}{r['samples_per_s']:>9.2f}{r['train_s']:>9.1f}"
              f"{r['turns']:>6}{r['accuracy']:>10.4f}")
    for n, r in ratios.items():
        verdict = "—" if r["met"] is None else ("MET" if r["met"] else "MISSED")
        goal = f" (goal >= {r['goal']}x)" if r["goal"] else ""
        print(f"{r['what']}: {r['ratio']:.2f}x{goal}, accuracy diff {r['accuracy_diff']:+.4f} "
              f"(tolerance {acc_tol:.4f}) -> {verdict}")
    write_result("trainer_vs_ours", summary, args.out)


if __name__ == "__main__":
    main()
