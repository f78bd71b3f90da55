"""`train(cfg, runtime, prepared_dir, out, state)`: fine-tune one cell and write its results.

Read top to bottom: set up (device, precision, data, model, objective, optimizer), resume from a
checkpoint if one was written for this cell, run the optimizer steps (validating after each
epoch, or every `train.eval_every` steps), pick the weights to test (`train.select`), test once,
and write the outputs. `out` maps the names of contrastlab.plan.layout.STAGE_FILES["train"] to
paths; `state` those of TRAIN_STATE (the checkpoint, kept across attempts).

Each optimizer step sees `batch_size x grad_accum` examples (the effective batch), split into
micro-batches of `train.micro_batch` (auto: the whole step on a GPU, `batch_size` on the CPU), or
of half that per earlier out-of-memory attempt (with more accumulation, so the step, its contrast
set and the result in expectation stay the same). The loss and gradient of a step equal those of
its whole effective batch (contrastlab.objectives.objective). A NaN or infinite loss or gradient norm stops
the cell, naming it and the step.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contrastlab.training import checkpoint

from contrastlab.training.batching import collate, epoch_steps, eval_batches, micro_batches
from contrastlab.plan.config import SPLITS, CellConfig, RuntimeConfig, TrainConfig
from contrastlab.plan.cost import train_cost
from contrastlab.operations.devices import init_device, pick_device
from contrastlab.operations.failures import OOM
from contrastlab.operations.io import atomic_path, write_json
from contrastlab.training.jobmodel import job_model
from contrastlab.analysis.metrics import classification_metrics, collapse, near_chance
from contrastlab.training.model import MODEL_PREFIX, count_trainable, trainable_state_dict
from contrastlab.training.optim import build_optimizer
from contrastlab.data.prepared import load_prepared, split_fingerprint
from contrastlab.operations.provenance import run_record

log = logging.getLogger("contrastlab.training.train")
CHECKPOINT_EVERY_S = 30.0  # after the first, at most one epoch-end checkpoint per this many s (signals: always)
MAX_SKIPPED_STEPS = 25  # fp16: consecutive steps skipped for overflowing gradients before the cell stops
RATE_AFTER_STEPS, RATE_AFTER_S = 5, 20.0  # the step rate is logged once, after this many steps or seconds


class NonFiniteLoss(FloatingPointError):
    """A loss term or the gradient norm became NaN/inf: the cell stops, naming itself and the step."""
    cause = "non_finite"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def configure_runtime(runtime: RuntimeConfig) -> None:
    """Settings that must precede any CUDA work: determinism."""
    if runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def first_micro_batch(train: TrainConfig, device_type: str) -> int:
    """The micro-batch of a first attempt: train.micro_batch, or for auto the whole step on a GPU
    (fewer, larger launches: issue 22 measured 32 x 1 at 1.8x the samples/s of 16 x 2 in bf16 on an
    H200) and batch_size on the CPU. Under contrast_set micro_batch the micro-batch is the contrast
    set of the recipe: batch_size."""
    if train.contrast_set == "micro_batch":
        return train.batch_size
    if train.micro_batch != "auto":
        return train.micro_batch
    return train.batch_size * train.grad_accum if device_type == "cuda" else train.batch_size


def micro_batching(cfg: CellConfig, ooms: int, couples: bool, device_type: str = "cpu") -> tuple[int, bool]:
    """(micro-batch size, GradCache on) after `ooms` out-of-memory attempts. Halving the micro-batch
    does not shrink a coupled objective's effective contrast set, whose activations are all held
    until the step's one backward; GradCache does, at the same result."""
    micro = max(1, first_micro_batch(cfg.train, device_type) >> ooms)
    grad_cache = cfg.train.grad_cache or (ooms > 0 and couples and cfg.train.contrast_set == "effective")
    return micro, grad_cache


class Trainer:
    """The model, objective and optimizer of one cell, and what one step and one evaluation do."""

    def __init__(self, cfg: CellConfig, runtime: RuntimeConfig, data, device, total_steps: int, ooms: int = 0):
        self.cfg, self.data, self.device = cfg, data, device
        self.pad_id = data.summary["pad_id"]
        built = job_model(cfg, runtime, device, len(data.names))
        self.model, self.precision, self.objective, self.params = built.model, built.precision, built.objective, built.params
        # saved as weights.safetensors, where embed finds the classifier's tensors under MODEL_PREFIX
        self.modules = nn.ModuleDict({MODEL_PREFIX.rstrip("."): self.model, "objective": self.objective})
        if runtime.compile:  # the forward only: parameter names and hooks stay those of the eager module
            self.model.encoder.forward = torch.compile(self.model.encoder.forward, dynamic=True)
        self.opt = build_optimizer(self.model, cfg.train, total_steps, self.objective)
        self.coupled = self.objective.couples_batch and cfg.train.contrast_set == "effective"
        self.micro, self.grad_cache = micro_batching(cfg, ooms, self.objective.couples_batch, device.type)
        self.skipped = 0

    def _check(self, what: str, value: torch.Tensor, epoch: int, step: int, terms=None) -> None:
        if not torch.isfinite(value).all():
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in (terms or {}).items())
            raise NonFiniteLoss(f"cell {self.cfg.cell} (seed {self.cfg.seed}): {what} is {float(value.detach())} at "
                                f"epoch {epoch + 1}, optimizer step {step}" + (f" [{detail}]" if detail else ""))

    def step(self, idx: np.ndarray, epoch: int, step: int) -> dict:
        """One optimizer step over the examples `idx`; -> its history row."""
        split = self.data.splits["train"]
        parts = micro_batches(idx, self.micro)
        batches = [collate(split.ids, p, self.pad_id, split.labels, self.device) for p in parts]
        sums: dict[str, float] = {}

        def backward(loss, terms=None):
            self._check("the loss", loss, epoch, step, terms)
            self.precision.backward(loss)

        if self.coupled and self.grad_cache:
            with self.precision.autocast():
                calls = [self.objective.forward_backward_cached(self.model, batches, len(idx), backward)]
        else:
            calls = []
            for call in ([batches] if self.coupled else [[b] for b in batches]):
                with self.precision.autocast():
                    terms = self.objective(self.model, call, len(idx))
                backward(terms["loss"], terms)
                calls.append({k: v.detach() for k, v in terms.items()})  # the graph is freed here
        for terms in calls:
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        self.precision.unscale(self.opt.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.opt.params, self.cfg.train.max_grad_norm)
        if self.precision.scaler is not None and not torch.isfinite(grad_norm):
            self.skipped += 1  # fp16 overflow: the scaler skips this step and lowers its scale
            if self.skipped > MAX_SKIPPED_STEPS:
                self._check("the gradient norm", grad_norm, epoch, step)
        else:
            self.skipped = 0
            self._check("the gradient norm", grad_norm, epoch, step)
        lr, lr_head = self.opt.lrs()
        self.precision.step(self.opt.optimizer)
        self.opt.scheduler.step()
        self.opt.optimizer.zero_grad(set_to_none=True)
        row = {"examples": len(idx), "tokens": sum(b["input_ids"].numel() for b in batches), "loss": sums.pop("loss"), "grad_norm": float(grad_norm), "lr": lr,
               "lr_head": lr_head}
        row.update({f"loss_{k}": v for k, v in sums.items()})
        return row

    @torch.inference_mode()
    def predict(self, split_name: str, batch_size: int) -> np.ndarray:
        """Class probabilities [N, C] of a split, in its order (batches are length-sorted inside)."""
        split = self.data.splits[split_name]
        self.model.eval()
        out = np.zeros((len(split), len(self.data.names)), dtype=np.float32)
        for idx in eval_batches([len(s) for s in split.ids], batch_size):
            batch = collate(split.ids, idx, self.pad_id, device=self.device)
            with self.precision.autocast():
                logits = self.model(batch["input_ids"], batch["attention_mask"])
            out[idx] = torch.softmax(logits.float(), -1).cpu().numpy()
        self.model.train()
        return out

    def validate(self, batch_size: int) -> tuple[float, float]:
        """(cross-entropy, accuracy) on the validation split."""
        probs = self.predict("val", batch_size)
        labels = self.data.splits["val"].labels
        nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
        return float(nll.mean()), float(np.mean(probs.argmax(1) == labels))

    def trained_state(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in trainable_state_dict(self.modules).items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.modules.load_state_dict(state, strict=False)


def train(cfg: CellConfig, runtime: RuntimeConfig, prepared_dir: str | Path, out: dict, state: dict,
          attempts=None, tracker=None, score_test: bool = True) -> dict:
    """Train one cell x seed; write `out` (metrics.json last: its presence marks a finished cell).
    `tracker` (contrastlab.operations.tracking.Tracking) gets each history row and validation as it happens.
    score_test False (a tuning trial, contrastlab.plan.tuning): the test split is never read, and `out`
    gets the validation metrics, history, epochs and config only (layout.TRIAL_FILES)."""
    configure_runtime(runtime)
    device = init_device(pick_device(runtime.device, jobs_per_gpu=runtime.jobs_per_gpu))  # before any CUDA call
    data = load_prepared(prepared_dir, SPLITS if score_test else ("train", "val"))
    split = data.splits["train"]
    effective = cfg.train.batch_size * cfg.train.grad_accum
    steps_per_epoch = math.ceil(len(split) / effective)
    total = cfg.train.total_steps(steps_per_epoch)
    ooms = attempts.count(OOM) if attempts is not None else 0
    trainer = Trainer(cfg, runtime, data, device, total, ooms)
    if ooms:
        log.warning("attempt after %d out-of-memory failure(s): micro-batch %d x %d accumulation%s", ooms,
                    trainer.micro, math.ceil(effective / trainer.micro), ", GradCache on" if trainer.grad_cache else "")
    if attempts is not None and attempts.records:
        attempts.records[-1].update(micro_batch=trainer.micro, grad_cache=trainer.grad_cache)

    ckpt = Path(state["checkpoint"])
    fingerprint = fingerprint_of(cfg, trainer.precision.name)
    loop = checkpoint.load(ckpt, fingerprint, trainer.modules, trainer.opt.optimizer, trainer.opt.scheduler,
                           trainer.precision.scaler)
    if loop is not None:
        log.info("resuming %s from epoch %d, step %d", cfg.cell, loop["step"] // steps_per_epoch + 1, loop["step"])
    else:
        loop = {"step": 0, "history": [], "epochs": [], "elapsed_s": 0.0, "best": None}
    last_save = None  # the first epoch's end always writes one; later ones at most every CHECKPOINT_EVERY_S

    def save_checkpoint():
        nonlocal last_save
        checkpoint.save(ckpt, fingerprint=fingerprint, module=trainer.modules, optimizer=trainer.opt.optimizer,
                        scheduler=trainer.opt.scheduler, scaler=trainer.precision.scaler, **loop)
        last_save = time.monotonic()

    log.info("cell %s seed %d: %d train examples, %d optimizer steps of %d on %s in %s; %d trainable parameters",
             cfg.cell, cfg.seed, len(split), total, effective, device, precision_words(trainer.precision),
             count_trainable(trainer.modules))
    lengths = [len(s) for s in split.ids]
    steps, steps_epoch, since_eval = None, None, []
    rate = {"from": loop["step"], "s": 0.0, "examples": 0, "logged": False}  # this attempt's steps
    trainer.model.train()
    with checkpoint.PreemptionFlag() as preempted:
        while loop["step"] < total:
            epoch, k = divmod(loop["step"], steps_per_epoch)
            if steps_epoch != epoch:
                steps, steps_epoch = epoch_steps(lengths, effective, cfg.seed, epoch), epoch
            t0 = time.perf_counter()
            row = trainer.step(steps[k], epoch, loop["step"] + 1)
            dt = time.perf_counter() - t0
            loop["step"] += 1
            loop["elapsed_s"] += dt
            loop["history"].append({"step": loop["step"], "epoch": epoch + 1, **row, "time_s": dt})
            if tracker is not None:
                tracker.log("train", loop["history"][-1], loop["step"])
            since_eval.append(row["loss"])
            n, elapsed = loop["step"], loop["elapsed_s"]
            _log_rate_once(rate, row["examples"], dt, n, total, trainer.precision)
            if n % runtime.log_every == 0 or n == total:
                log.info("epoch %d step %d/%d loss %.4f grad_norm %.3g lr %.3g (%.2f s/step, ETA %.0f s)",
                         epoch + 1, n, total, row["loss"], row["grad_norm"], row["lr"], elapsed / n,
                         elapsed / n * (total - n))
            epoch_end = n % steps_per_epoch == 0 or n == total
            every = cfg.train.eval_every
            if (every and n % every == 0) or (not every and epoch_end) or n == total:
                _evaluate(trainer, loop, runtime, epoch, since_eval)
                if tracker is not None:
                    tracker.log("val", loop["epochs"][-1], loop["step"])
                since_eval = []
            if preempted:
                save_checkpoint()
                log.warning("signal %d: checkpoint written at step %d; exiting for a retry to resume",
                            preempted.signum, n)
                raise checkpoint.Preempted(preempted.signum)
            if epoch_end and n < total and (last_save is None or time.monotonic() - last_save >= CHECKPOINT_EVERY_S):
                save_checkpoint()
                log.info("epoch %d done, checkpoint written", epoch + 1)

    best = loop["best"]
    if not score_test:
        metrics = _val_metrics(cfg, trainer, data, loop, device)
        _write_csv(out["history"], loop["history"])
        _write_csv(out["epochs"], loop["epochs"])
        write_json(out["config"], cfg.model_dump())
        write_json(out["metrics"], metrics)  # last: its presence marks a finished trial
        ckpt.unlink(missing_ok=True)
        return metrics
    if cfg.train.select == "best_val" and best is not None:
        trainer.load_state(best["state"])
        log.info("testing the weights of step %d (best validation accuracy %.4f)", best["step"], best["val_accuracy"])
    probs = trainer.predict("test", runtime.eval_batch_size)
    metrics = _metrics(cfg, trainer, data, probs, loop, device, runtime, effective)
    metrics |= {"test_examples": split_fingerprint(prepared_dir),  # the aggregate pairs only equal ones
                **near_chance(metrics["val_accuracy"], data.splits["val"].labels)}
    _write_outputs(out, cfg, trainer, loop, data, probs, metrics)
    ckpt.unlink(missing_ok=True)
    return metrics


def fingerprint_of(cfg: CellConfig, precision: str | None = None) -> str:
    """What determines the result: the whole cell config, less how the effective batch is split,
    and the precision `auto` resolved to (a retry on another host must not resume a run in another)."""
    import hashlib
    import json

    d = cfg.model_dump()
    effective = d["train"]["batch_size"] * d["train"]["grad_accum"]
    d["train"].update(batch_size=effective, grad_accum=1)
    if precision and precision != d["train"]["precision"]:
        d["train"]["precision"] = f"{d['train']['precision']}:{precision}"
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _evaluate(trainer: Trainer, loop: dict, runtime: RuntimeConfig, epoch: int, since: list[float]) -> None:
    val_loss, val_acc = trainer.validate(runtime.eval_batch_size)
    loop["epochs"].append({"step": loop["step"], "epoch": epoch + 1, "train_loss": float(np.mean(since)),
                           "val_loss": val_loss, "val_accuracy": val_acc})
    best = loop["best"]
    if best is None or (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]):
        loop["best"] = {"step": loop["step"], "val_accuracy": val_acc, "val_loss": val_loss,
                        "state": trainer.trained_state() if trainer.cfg.train.select == "best_val" else None}
    log.info("validation after step %d: loss %.4f accuracy %.4f", loop["step"], val_loss, val_acc)


def precision_words(precision) -> str:
    return precision.name if precision.configured == precision.name else f"{precision.name} (from {precision.configured})"


def _log_rate_once(rate: dict, examples: int, dt: float, n: int, total: int, precision) -> None:
    """After this attempt's first RATE_AFTER_STEPS steps or RATE_AFTER_S seconds: the step rate,
    so that `tail -f` on the log shows at once a job that runs far slower than it should."""
    rate["s"] += dt
    rate["examples"] += examples
    done = n - rate["from"]
    if rate["logged"] or not (done >= RATE_AFTER_STEPS or rate["s"] >= RATE_AFTER_S or n == total):
        return
    rate["logged"] = True
    log.info("step rate over the first %d steps: %.3g steps/s (%.3g s/step), %.1f examples/s, in %s; "
             "the %d steps left take about %.0f s", done, done / rate["s"], rate["s"] / done,
             rate["examples"] / rate["s"], precision_words(precision), total - n, rate["s"] / done * (total - n))


def _shares(history: list[dict], objective) -> dict[str, float]:
    """Mean over steps of each term's share of the weighted loss, sum_t w_t |term_t|, with the
    classification terms counted together as the objective's `ce_term`."""
    def name(t):
        return objective.ce_term if t in objective.classification_terms else t
    rows = []
    for h in history:
        row: dict[str, float] = {}
        for t, w in objective.weights.items():
            row[name(t)] = row.get(name(t), 0.0) + abs(w * h.get(f"loss_{t}", 0.0))
        rows.append(row)
    totals = [sum(r.values()) or 1.0 for r in rows]
    return {t: float(np.mean([r[t] / s for r, s in zip(rows, totals)])) for t in rows[0]} if rows else {}


def _metrics(cfg, trainer, data, probs, loop, device, runtime, effective) -> dict:
    test = data.splits["test"]
    history = loop["history"]
    obj = trainer.objective
    shares = _shares(history, obj)
    ce = np.asarray([h.get(f"loss_{obj.ce_term}", h["loss"]) for h in history])
    best = loop["best"] or {}
    return {
        "cell": cfg.cell, "family": cfg.family, "seed": cfg.seed, **classification_metrics(test.labels, probs),
        "n_train": len(data.splits["train"]), "n_val": len(data.splits["val"]), "n_test": len(test),
        "steps": loop["step"], "effective_batch": effective, "micro_batch": trainer.micro,
        "grad_accum": math.ceil(effective / trainer.micro), "grad_cache": trainer.grad_cache,
        "selected_step": best.get("step") if cfg.train.select == "best_val" else loop["step"],
        "val_accuracy": best.get("val_accuracy") if cfg.train.select == "best_val" else loop["epochs"][-1]["val_accuracy"],
        "trainable_params": count_trainable(trainer.modules),
        **train_cost(trainer.params, cfg.model, trainer.model.encoder.config.to_dict(),
                     sum(h.get("tokens", 0) for h in history), trainer.coupled and trainer.grad_cache),
        "train_time_s": loop["elapsed_s"], "step_time_s": float(np.median([h["time_s"] for h in history])),
        "samples_per_s": sum(h["examples"] for h in history) / loop["elapsed_s"],
        "peak_memory_mb": peak_memory_mb(device), "device": str(device),
        "ce_term": obj.ce_term, "loss_weights": obj.weights, "loss_shares": shares,
        "collapsed": collapse(probs.argmax(1), test.labels, ce, shares, obj.ce_term, data.names),
        "test_in_train": data.summary.get("overlap", {}).get("train_test", 0),
        "label_noise_flipped": data.summary.get("label_noise", {}).get("flipped", 0),
        "provenance": {**run_record(device, trainer.precision.name, runtime),
                       "precision_configured": trainer.precision.configured},
    }


def _val_metrics(cfg, trainer, data, loop, device) -> dict:
    """A tuning trial's score: the validation accuracy and loss of the weights `train.select` picks."""
    point = loop["best"] if cfg.train.select == "best_val" and loop["best"] else loop["epochs"][-1]
    return {"cell": cfg.cell, "family": cfg.family, "seed": cfg.seed, "val_accuracy": point["val_accuracy"],
            "val_loss": point["val_loss"], "selected_step": point["step"], "steps": loop["step"],
            "n_train": len(data.splits["train"]), "n_val": len(data.splits["val"]),
            "train_time_s": loop["elapsed_s"], "trainable_params": count_trainable(trainer.modules),
            "device": str(device), "splits_read": sorted(data.splits)}


def _write_csv(path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _write_outputs(out, cfg, trainer, loop, data, probs, metrics) -> None:
    from safetensors.torch import save_file

    with atomic_path(out["weights"]) as tmp:
        save_file({k: v.cpu().contiguous() for k, v in trainable_state_dict(trainer.modules).items()}, str(tmp))
    test = data.splits["test"]
    preds = probs.argmax(1)
    _write_csv(out["predictions"], [
        {"index": i, "row": int(test.rows[i]), "label": int(test.labels[i]), "pred": int(preds[i]),
         "correct": int(test.labels[i] == preds[i]), **{f"prob_{n}": float(probs[i, c]) for c, n in enumerate(data.names)}}
        for i in range(len(test))])
    _write_csv(out["history"], loop["history"])
    _write_csv(out["epochs"], loop["epochs"])
    write_json(out["config"], cfg.model_dump())
    write_json(out["metrics"], metrics)  # last: its presence marks a finished cell

