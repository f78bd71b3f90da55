"""`train(cfg, prepared_dir, out_dir)`: fine-tune one cell and write its results.

Outputs in `out_dir`: weights.safetensors (only what trained), metrics.json, predictions.csv
(per test example), history.csv (per optimizer step: every loss term, grad norm, LR, step time),
config.json (the resolved cell config). checkpoint.pt exists only while the cell is unfinished.
"""
from __future__ import annotations

import logging
import math
import random
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from . import checkpoint
from .batching import collate, eval_batches, step_groups, train_batches
from .cellconfig import CellConfig
from .data import load_prepared
from .devices import pick_device
from .io import atomic_path, write_json
from .metrics import classification_metrics
from .model import build_classifier, load_tokenizer, trainable_state_dict
from .objectives import build_objective
from .optim import build_optimizer

log = logging.getLogger("contrastlab.train")


class NonFiniteLoss(FloatingPointError):
    """A loss term or the gradient norm became NaN/inf: the cell stops, naming itself and the step."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """The job's device: a free GPU claimed for the life of the process (see contrastlab.devices)."""
    return pick_device(name)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build(cfg: CellConfig, num_labels: int, device: torch.device):
    """Model with the objective attached (its heads then train and save with the model)."""
    seed_everything(cfg.seed)
    model = build_classifier(cfg.model, num_labels)
    model.objective = build_objective(cfg.family, cfg.loss, model)
    return model.to(device)


def _check_finite(cfg: CellConfig, what: str, value: torch.Tensor, epoch: int, step: int, terms=None):
    if not torch.isfinite(value).all():
        detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in (terms or {}).items())
        raise NonFiniteLoss(f"cell {cfg.cell} (seed {cfg.seed}): {what} is {float(value.detach())} at epoch "
                            f"{epoch + 1}, optimizer step {step}" + (f" [{detail}]" if detail else ""))


def train(cfg: CellConfig, prepared_dir: str | Path, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    data, label_names = load_prepared(prepared_dir)
    pad_id = load_tokenizer(cfg.model.name).pad_token_id
    train_ids, train_labels = data["train"]["input_ids"], np.asarray(data["train"]["label"])
    lengths = [len(s) for s in train_ids]

    model = build(cfg, len(label_names), device)
    opt_cfg = cfg.train
    n_batches = math.ceil(len(train_ids) / opt_cfg.batch_size)
    steps_per_epoch = math.ceil(n_batches / opt_cfg.grad_accum)
    total_steps = steps_per_epoch * opt_cfg.epochs
    optimizer, scheduler = build_optimizer(model, opt_cfg, total_steps, lora=cfg.model.lora is not None)
    trainable = [p for p in model.parameters() if p.requires_grad]

    ckpt_path = out_dir / "checkpoint.pt"
    state = checkpoint.load(ckpt_path, cfg.fingerprint(), model, optimizer, scheduler)
    start_epoch, skip_steps, global_step, history, elapsed = 0, 0, 0, [], 0.0
    if state is not None:
        start_epoch, skip_steps = state["epoch"], state["step_in_epoch"]
        global_step, history, elapsed = state["global_step"], state["history"], state["elapsed_s"]
        log.info("resuming %s from epoch %d, step %d", cfg.cell, start_epoch + 1, global_step)

    def save_checkpoint(epoch, step_in_epoch):
        checkpoint.save(ckpt_path, fingerprint=cfg.fingerprint(), model=model, optimizer=optimizer,
                        scheduler=scheduler, epoch=epoch, step_in_epoch=step_in_epoch,
                        global_step=global_step, history=history, elapsed_s=elapsed)

    log.info("cell %s seed %d: %d train examples, %d optimizer steps on %s", cfg.cell, cfg.seed,
             len(train_ids), total_steps, device)
    model.train()
    with checkpoint.PreemptionFlag() as preempted:
        for epoch in range(start_epoch, opt_cfg.epochs):
            batches = train_batches(lengths, opt_cfg.batch_size, cfg.seed, epoch)
            for step_in_epoch, group in enumerate(step_groups(batches, opt_cfg.grad_accum)):
                if step_in_epoch < skip_steps:
                    continue
                t0 = time.perf_counter()
                row = _optimizer_step(cfg, model, optimizer, scheduler, trainable, group, train_ids,
                                      train_labels, pad_id, device, epoch, global_step + 1)
                global_step += 1
                dt = time.perf_counter() - t0
                elapsed += dt
                history.append({"step": global_step, "epoch": epoch + 1, **row, "time_s": dt})
                if global_step % cfg.log_every == 0 or global_step == total_steps:
                    log.info("epoch %d/%d step %d/%d loss %.4f grad_norm %.3g lr %.3g (%.2f s/step, ETA %.0f s)",
                             epoch + 1, opt_cfg.epochs, global_step, total_steps, row["loss"], row["grad_norm"],
                             row["lr"], elapsed / global_step, elapsed / global_step * (total_steps - global_step))
                if preempted:
                    save_checkpoint(epoch, step_in_epoch + 1)
                    log.warning("signal %d: checkpoint written at step %d; exiting for a retry to resume",
                                preempted.signum, global_step)
                    raise checkpoint.Preempted(128 + preempted.signum)
            skip_steps = 0
            save_checkpoint(epoch + 1, 0)
            log.info("epoch %d/%d done, checkpoint written", epoch + 1, opt_cfg.epochs)

    probs = predict(model, data["test"]["input_ids"], pad_id, device, cfg.eval_batch_size)
    test_labels = np.asarray(data["test"]["label"])
    metrics = {"cell": cfg.cell, "family": cfg.family, "seed": cfg.seed,
               **classification_metrics(test_labels, probs),
               "n_train": len(train_ids), "n_test": len(test_labels), "steps": global_step,
               "train_time_s": elapsed, "step_time_s": float(np.median([h["time_s"] for h in history])),
               "peak_memory_mb": peak_memory_mb(device), "device": str(device)}
    _write_outputs(out_dir, cfg, model, history, test_labels, probs, label_names, metrics)
    ckpt_path.unlink(missing_ok=True)
    return metrics


def _optimizer_step(cfg, model, optimizer, scheduler, trainable, group, ids, labels, pad_id, device,
                    epoch, step) -> dict:
    """One optimizer step over `group` micro-batches; the loss is the mean over the effective batch.

    A contrastive objective under train.contrast_set "effective" sees every micro-batch in one
    call (the contrast set is the effective batch) and backpropagates once; otherwise each
    micro-batch backpropagates its share at once, which bounds memory to one micro-batch."""
    batches = [collate(ids, idx, pad_id, labels, device) for idx in group]
    if model.objective.couples_batch and cfg.train.contrast_set == "effective":
        parts = [(model.objective.forward_group(model, batches), 1.0)]
    else:
        n_total = sum(len(idx) for idx in group)
        parts = ((model.objective(model, batch), len(batch["labels"]) / n_total) for batch in batches)
    sums: dict[str, float] = {}
    for terms, weight in parts:  # lazily: a micro-batch's graph is freed before the next is built
        _check_finite(cfg, "the loss", terms["loss"], epoch, step, terms)
        (terms["loss"] * weight).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * weight
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.train.max_grad_norm)
    _check_finite(cfg, "the gradient norm", grad_norm, epoch, step)
    lrs = {g["name"].removesuffix("_nodecay"): g["lr"] for g in optimizer.param_groups}
    lr = max((v for k, v in lrs.items() if k != "head"), default=lrs["head"])  # the top layer's LR
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    row = {"loss": sums.pop("loss"), "grad_norm": float(grad_norm), "lr": lr, "lr_head": lrs["head"]}
    row.update({f"loss_{k}": v for k, v in sums.items()})
    return row


@torch.no_grad()
def predict(model, ids, pad_id: int, device, batch_size: int) -> np.ndarray:
    """Class probabilities [N, C] in the order of `ids` (batches are length-sorted internally)."""
    model.eval()
    out = None
    for idx in eval_batches([len(s) for s in ids], batch_size):
        batch = collate(ids, idx, pad_id, device=device)
        p = torch.softmax(model(batch["input_ids"], batch["attention_mask"]).float(), -1).cpu().numpy()
        if out is None:
            out = np.zeros((len(ids), p.shape[1]), dtype=np.float32)
        out[idx] = p
    model.train()
    return out


def _write_outputs(out_dir, cfg, model, history, labels, probs, label_names, metrics) -> None:
    with atomic_path(out_dir / "weights.safetensors") as tmp:
        save_file(trainable_state_dict(model), str(tmp))
    preds = pd.DataFrame({"index": np.arange(len(labels)), "label": labels, "pred": probs.argmax(1)})
    preds["correct"] = (preds["label"] == preds["pred"]).astype(int)
    for c, name in enumerate(label_names):
        preds[f"prob_{name}"] = probs[:, c]
    for name, df in (("predictions.csv", preds), ("history.csv", pd.DataFrame(history))):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
    write_json(out_dir / "config.json", cfg.to_dict())
    write_json(out_dir / "metrics.json", metrics)  # last: its presence marks a finished cell
