"""The training loop: outputs, resume after a crash or a preemption signal, the NaN guard, an
accumulated step equal to one full-batch step, clipping, best-validation selection, mixed
precision, the out-of-memory retry and the provenance record."""
import json
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from contrastlab.training import checkpoint

from contrastlab.plan import layout
from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
from contrastlab.data.splits import prepare
from contrastlab.objectives.families.baseline.objective import CrossEntropy
from contrastlab.operations.jobs import Attempts, job
from contrastlab.training.model import load_tokenizer, load_trained
from contrastlab.analysis.metrics import near_chance
from contrastlab.data.prepared import load_prepared, split_fingerprint
from contrastlab.training.train import NonFiniteLoss, Trainer, fingerprint_of, train

RUNTIME = RuntimeConfig(device="cpu", threads=1, log_every=1)


@pytest.fixture(scope="module")
def prepared(tiny_deberta_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tiny-len32"
    prepare(DataConfig(source="embedded", max_train=200, max_eval=60), load_tokenizer(str(tiny_deberta_dir)), 32, out)
    return out


def cell(tiny_deberta_dir, **train):
    return CellConfig.model_validate({
        "cell": "baseline", "family": "baseline", "seed": 3,
        "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 2},
        "train": {"epochs": 2, "batch_size": 16, "grad_accum": 2, "lr_top": 1e-3, "lr_head": 1e-3,
                  "precision": "fp32", **train}})  # fp32 unless a test says: the same numbers on every CPU


@pytest.fixture(scope="module")
def cfg(tiny_deberta_dir):
    return cell(tiny_deberta_dir)


def run(cfg, prepared, d, attempts=None, runtime=RUNTIME):
    out = {k: d / v for k, v in layout.STAGE_FILES["train"].items()}
    state = {k: d / v for k, v in layout.TRAIN_STATE.items()}
    return train(cfg, runtime, prepared, out, state, attempts)


@pytest.fixture(scope="module")
def reference_run(cfg, prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return out, run(cfg, prepared, out)


def _interrupt_on_call(monkeypatch, n, action):
    """Run `action()` inside the n-th micro-batch's loss computation."""
    calls = {"n": 0}
    forward = CrossEntropy.forward

    def counting(self, model, batches, n_total):
        calls["n"] += 1
        if calls["n"] == n:
            action()
        return forward(self, model, batches, n_total)

    monkeypatch.setattr(CrossEntropy, "forward", counting)


def test_train_writes_every_output_with_a_history_row_per_optimizer_step(reference_run, cfg):
    out, metrics = reference_run
    assert all((out / f).exists() for f in layout.STAGE_FILES["train"].values())
    assert not (out / layout.TRAIN_STATE["checkpoint"]).exists()
    history = pd.read_csv(out / "train/history.csv")
    assert len(history) == metrics["steps"] == 2 * 7  # 200 examples / 32 per step -> 7 steps per epoch
    assert history["examples"].sum() == 2 * 200
    assert {"loss", "loss_ce", "grad_norm", "lr", "lr_head", "time_s"} <= set(history.columns)
    assert np.isfinite(history["grad_norm"]).all() and (history["grad_norm"] > 0).all()
    assert history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean()  # it learns
    epochs = pd.read_csv(out / "train/epochs.csv")
    assert epochs["step"].tolist() == [7, 14] and epochs["val_accuracy"].between(0, 1).all()
    preds = pd.read_csv(out / "train/predictions.csv")
    assert len(preds) == metrics["n_test"] == 60
    assert metrics["accuracy"] == pytest.approx(preds["correct"].mean())
    assert 0 <= metrics["roc_auc"] <= 1 and metrics["peak_memory_mb"] > 0
    saved = load_file(str(out / "train/weights.safetensors"))
    assert saved and all(k.startswith(("model.encoder.encoder.layer.2.", "model.encoder.encoder.layer.3.",
                                       "model.classifier.")) for k in saved)
    assert metrics["trainable_params"] == sum(v.numel() for v in saved.values())
    assert json.loads((out / "train/config.json").read_text())["seed"] == cfg.seed


def test_metrics_record_provenance_precision_and_the_micro_batch(reference_run):
    _, metrics = reference_run
    p = metrics["provenance"]
    for key in ("python", "torch", "transformers", "peft", "device_name", "device_count", "precision",
                "deterministic", "tf32", "contrastlab_commit", "host"):
        assert key in p, key
    assert p["torch"] == torch.__version__ and p["precision"] == "fp32" and p["device_count"] == 1
    assert (metrics["micro_batch"], metrics["grad_accum"], metrics["effective_batch"]) == (16, 2, 32)


def test_metrics_record_which_test_examples_and_whether_validation_is_near_chance(reference_run, prepared):
    """What the aggregate pairs cells by, and the flag of a cell that barely learned (metrics.near_chance)."""
    _, metrics = reference_run
    assert metrics["test_examples"] == split_fingerprint(prepared) and len(metrics["test_examples"]) == 16
    val = load_prepared(prepared).splits["val"].labels
    assert metrics["val_chance"] == pytest.approx(np.bincount(val).max() / len(val))
    assert metrics["near_chance_val"] is near_chance(metrics["val_accuracy"], val)["near_chance_val"]


def test_crash_in_second_epoch_resumes_from_the_epoch_checkpoint_to_the_same_result(
        cfg, prepared, reference_run, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 20, lambda: (_ for _ in ()).throw(RuntimeError("power cut")))
    with pytest.raises(RuntimeError, match="power cut"):
        run(cfg, prepared, tmp_path)
    assert not (tmp_path / "train/metrics.json").exists()
    state = checkpoint.peek(tmp_path / layout.TRAIN_STATE["checkpoint"], fingerprint_of(cfg))
    assert state["loop"]["step"] == 7
    monkeypatch.undo()
    metrics = run(cfg, prepared, tmp_path)
    _assert_same_run(reference_run, tmp_path, metrics)


def test_preemption_signal_checkpoints_mid_epoch_and_the_retry_matches_an_uninterrupted_run(
        cfg, prepared, reference_run, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 5, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    with pytest.raises(checkpoint.Preempted) as exc:
        run(cfg, prepared, tmp_path)
    assert exc.value.code == 128 + signal.SIGUSR1 and exc.value.cause == "time_limit"
    monkeypatch.undo()
    metrics = run(cfg, prepared, tmp_path)
    _assert_same_run(reference_run, tmp_path, metrics)


def test_checkpoint_of_another_config_is_not_resumed(cfg, prepared, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 16, lambda: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError):
        run(cfg, prepared, tmp_path)
    monkeypatch.undo()
    changed = CellConfig.model_validate({**cfg.model_dump(), "train": {**cfg.model_dump()["train"], "epochs": 1}})
    metrics = run(changed, prepared, tmp_path)
    assert metrics["steps"] == 7  # a resume would have started at step 8


def test_nan_loss_stops_the_cell_naming_it_and_the_step(cfg, prepared, tmp_path, monkeypatch):
    forward = CrossEntropy.forward
    calls = {"n": 0}

    def poisoned(self, model, batches, n_total):
        calls["n"] += 1
        terms = forward(self, model, batches, n_total)
        if calls["n"] == 4:  # second micro-batch of optimizer step 2
            terms = {k: v * float("nan") for k, v in terms.items()}
        return terms

    monkeypatch.setattr(CrossEntropy, "forward", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"cell baseline \(seed 3\): the loss is nan at epoch 1, optimizer step 2"):
        run(cfg, prepared, tmp_path)
    assert not (tmp_path / "train/metrics.json").exists()


def _assert_same_run(reference_run, out, metrics):
    ref_out, ref = reference_run
    for key in ("accuracy", "roc_auc", "macro_f1", "steps"):
        assert metrics[key] == ref[key], key
    h, h_ref = pd.read_csv(out / "train/history.csv"), pd.read_csv(ref_out / "train/history.csv")
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(h["grad_norm"], h_ref["grad_norm"], rtol=1e-5)
    pd.testing.assert_frame_equal(pd.read_csv(out / "train/predictions.csv"),
                                  pd.read_csv(ref_out / "train/predictions.csv"))


@pytest.mark.parametrize("contrast_set,size", [("effective", 32), ("micro_batch", 16)])
def test_contrast_set_is_the_effective_batch_unless_configured_per_micro_batch(
        cfg, prepared, tmp_path, monkeypatch, contrast_set, size):
    from contrastlab.objectives.losses import SupConLoss

    seen = []
    forward = SupConLoss.forward

    def recording(self, views, labels, view_mask=None, memory=None):
        seen.append(len(labels))
        return forward(self, views, labels, view_mask, memory)

    monkeypatch.setattr(SupConLoss, "forward", recording)
    d = cfg.model_dump()
    scl = CellConfig.model_validate({**d, "cell": "scl", "family": "scl",
                                     "train": {**d["train"], "epochs": 1, "contrast_set": contrast_set}})
    metrics = run(scl, prepared, tmp_path)
    # 200 examples: 6 steps of 32 and one of 8; one loss call per step over up to 32 examples,
    # or one per micro-batch of up to 16
    assert metrics["steps"] == 7 and sum(seen) == 200 and max(seen) == size
    assert len(seen) == (7 if contrast_set == "effective" else 13)


def _trainer(tiny_deberta_dir, prepared, family="baseline", loss=None, micro=16, **train):
    c = cell(tiny_deberta_dir, **train)
    c = CellConfig.model_validate({**c.model_dump(), "family": family, "loss": loss or {},
                                   "model": {**c.model_dump()["model"], "head_dropout": 0.0}})
    t = Trainer(c, RUNTIME, load_prepared(prepared), torch.device("cpu"), total_steps=10)
    t.model.eval()  # no dropout: both splits of the step see the same network
    t.micro = micro
    return t


def _step_grads(trainer, idx):
    grads = {}

    def record():
        grads.update({id(p): p.grad.clone() for p in trainer.opt.params if p.grad is not None})

    step = trainer.opt.optimizer.step
    trainer.opt.optimizer.step = lambda *a, **k: (record(), step(*a, **k))[1]
    row = trainer.step(idx, 0, 1)
    return row, [grads[id(p)] for p in trainer.opt.params if id(p) in grads]


@pytest.mark.parametrize("family,loss", [("baseline", {}), ("rdrop", {"kl_reduction": "sum", "stages": 2}),
                                         ("scl", {}), ("token", {"k": 4})])
def test_an_accumulated_step_equals_one_full_batch_step_in_gradient_and_logged_loss(
        tiny_deberta_dir, prepared, family, loss):
    idx = np.arange(32)
    rows, grads = [], []
    for micro in (8, 32):  # four micro-batches of 8, or the whole step at once
        torch.manual_seed(0)
        r, g = _step_grads(_trainer(tiny_deberta_dir, prepared, family, loss, micro), idx)
        rows.append(r)
        grads.append(g)
    assert rows[0]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-5)
    assert rows[0]["grad_norm"] == pytest.approx(rows[1]["grad_norm"], rel=1e-4)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_gradient_norm_at_the_optimizer_step_never_exceeds_max_grad_norm(tiny_deberta_dir, prepared):
    trainer = _trainer(tiny_deberta_dir, prepared, max_grad_norm=0.05, lr_top=1e-2, lr_head=1e-2)
    norms = []

    def record():
        norms.append(torch.norm(torch.stack([p.grad.norm() for p in trainer.opt.params if p.grad is not None])).item())

    step = trainer.opt.optimizer.step
    trainer.opt.optimizer.step = lambda *a, **k: (record(), step(*a, **k))[1]
    before = [trainer.step(np.arange(i * 32, i * 32 + 32), 0, i + 1)["grad_norm"] for i in range(3)]
    assert max(before) > 0.05  # the raw gradient is larger: clipping is what holds it down
    assert max(norms) <= 0.05 * (1 + 1e-4)


def test_best_val_tests_the_weights_of_the_best_validation_epoch(tiny_deberta_dir, prepared, tmp_path):
    c = cell(tiny_deberta_dir, epochs=4, select="best_val", lr_top=3e-3, lr_head=3e-3)
    metrics = run(c, prepared, tmp_path)
    epochs = pd.read_csv(tmp_path / "train/epochs.csv")
    best = epochs.sort_values(["val_accuracy", "val_loss"], ascending=[False, True], kind="stable").iloc[0]
    assert metrics["selected_step"] == best["step"] and metrics["val_accuracy"] == best["val_accuracy"]
    # the saved weights are those of that epoch: they give its validation accuracy again
    data = load_prepared(prepared)
    model = load_trained(c.model, tmp_path / "train/weights.safetensors", len(data.names), "cpu")
    t = Trainer(c, RUNTIME, data, torch.device("cpu"), total_steps=1)
    t.model = model
    assert t.validate(64)[1] == pytest.approx(best["val_accuracy"])
    last = epochs.iloc[-1]
    assert len(epochs) == 4 and (best["step"] != last["step"] or best["val_accuracy"] >= last["val_accuracy"])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_the_cpu_has_finite_losses_and_gradients(
        tiny_deberta_dir, prepared, tmp_path, precision):
    # numbers, not speed: emulated bf16/fp16 (a CPU without them) is allowed to run here
    slow_ok = RUNTIME.model_copy(update={"allow_slow_precision": True})
    metrics = run(cell(tiny_deberta_dir, epochs=1, precision=precision), prepared, tmp_path, runtime=slow_ok)
    history = pd.read_csv(tmp_path / "train/history.csv")
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["grad_norm"]).all()
    assert metrics["provenance"]["precision"] == precision
    weights = load_file(str(tmp_path / "train/weights.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values())  # master weights stay fp32


@pytest.fixture(scope="module")
def no_dropout_model(tiny_deberta_dir, tmp_path_factory):
    """The tiny model with every dropout off: a run is then a function of its steps only."""
    d = tmp_path_factory.mktemp("tiny_nodrop")
    shutil.copytree(tiny_deberta_dir, d, dirs_exist_ok=True)
    conf = json.loads((d / "config.json").read_text())
    conf.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (d / "config.json").write_text(json.dumps(conf))
    return d


def test_an_out_of_memory_retry_halves_the_micro_batch_and_trains_the_same_steps(
        no_dropout_model, prepared, tmp_path, max_micro_batch):
    c = CellConfig.model_validate({**cell(no_dropout_model, epochs=1).model_dump(),
                                   "model": {"name": str(no_dropout_model), "max_len": 32, "trainable_layers": 2,
                                             "head_dropout": 0.0}})
    plain = run(c, prepared, tmp_path / "plain")
    attempts_file = tmp_path / "retried/attempts.json"
    max_micro_batch("8")  # this "device" fits at most 8 examples per micro-batch
    with pytest.raises(SystemExit):
        with job(None, attempts_file, fingerprint_of(c)) as attempts:
            run(c, prepared, tmp_path / "retried", attempts)
    first = Attempts(attempts_file, fingerprint_of(c)).records
    assert [a["cause"] for a in first] == ["gpu_oom"] and first[0]["micro_batch"] == 16
    with job(None, attempts_file, fingerprint_of(c)) as attempts:
        retried = run(c, prepared, tmp_path / "retried", attempts)
    assert (retried["micro_batch"], retried["grad_accum"], retried["effective_batch"]) == (8, 4, 32)
    h, h_plain = pd.read_csv(tmp_path / "retried/train/history.csv"), pd.read_csv(tmp_path / "plain/train/history.csv")
    np.testing.assert_allclose(h["loss"], h_plain["loss"], rtol=1e-4)
    assert retried["accuracy"] == plain["accuracy"]
    assert [a["cause"] for a in Attempts(attempts_file, fingerprint_of(c)).records] == ["gpu_oom", "done"]


def test_a_contrastive_out_of_memory_retry_switches_to_gradcache(tiny_deberta_dir, prepared):
    from contrastlab.training.train import micro_batching

    c = CellConfig.model_validate({**cell(tiny_deberta_dir).model_dump(), "family": "scl"})
    assert micro_batching(c, 0, couples=True) == (16, False)
    assert micro_batching(c, 1, couples=True) == (8, True)  # halving alone keeps the effective set's activations
    assert micro_batching(c, 2, couples=False) == (4, False)


def test_micro_batch_auto_is_the_whole_step_on_a_gpu_and_batch_size_on_the_cpu(tiny_deberta_dir):
    from contrastlab.training.train import micro_batching

    scl = CellConfig.model_validate({**cell(tiny_deberta_dir).model_dump(), "family": "scl"})
    assert scl.train.micro_batch == "auto"
    assert [micro_batching(scl, n, couples=True, device_type="cuda") for n in range(3)] == [
        (32, False), (16, True), (8, True)]  # the step of 16 x 2 as one micro-batch, then halved
    assert micro_batching(scl, 0, couples=True, device_type="cpu") == (16, False)
    fixed = CellConfig.model_validate({**scl.model_dump(), "train": {**scl.train.model_dump(), "micro_batch": 8}})
    assert micro_batching(fixed, 0, couples=True, device_type="cuda") == (8, False)
    # the reference's contrast set is the micro-batch: it stays batch_size on any device
    own = CellConfig.model_validate({**scl.model_dump(), "train": {**scl.train.model_dump(),
                                                                   "contrast_set": "micro_batch"}})
    assert micro_batching(own, 0, couples=True, device_type="cuda") == (16, False)


def test_a_micro_batch_too_large_for_the_device_halves_at_each_retry_until_it_fits(
        no_dropout_model, prepared, tmp_path, max_micro_batch):
    """A micro-batch of the whole step (what auto starts from on a GPU) on a "device" that fits 8:
    32 and 16 run out of memory, 8 trains the same steps as the recipe's 16 x 2."""
    base = cell(no_dropout_model, epochs=1).model_dump()
    base["model"].update(head_dropout=0.0)
    plain = run(CellConfig.model_validate(base), prepared, tmp_path / "plain")
    c = CellConfig.model_validate({**base, "train": {**base["train"], "micro_batch": 32}})
    attempts_file = tmp_path / "retried/attempts.json"
    max_micro_batch("8")
    for _ in range(2):
        with pytest.raises(SystemExit):
            with job(None, attempts_file, fingerprint_of(c)) as attempts:
                run(c, prepared, tmp_path / "retried", attempts)
    with job(None, attempts_file, fingerprint_of(c)) as attempts:
        retried = run(c, prepared, tmp_path / "retried", attempts)
    records = Attempts(attempts_file, fingerprint_of(c)).records
    assert [(a["cause"], a["micro_batch"]) for a in records] == [("gpu_oom", 32), ("gpu_oom", 16), ("done", 8)]
    assert (retried["micro_batch"], retried["grad_accum"], retried["effective_batch"]) == (8, 4, 32)
    h, h_plain = pd.read_csv(tmp_path / "retried/train/history.csv"), pd.read_csv(tmp_path / "plain/train/history.csv")
    np.testing.assert_allclose(h["loss"], h_plain["loss"], rtol=1e-4)


def test_a_non_finite_loss_is_not_retried_within_a_run_but_runs_again_in_the_next(cfg, prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASTLAB_RUN", "run-1")
    forward = CrossEntropy.forward

    def poisoned(self, model, batches, n_total):
        return {k: v * float("nan") for k, v in forward(self, model, batches, n_total).items()}

    monkeypatch.setattr(CrossEntropy, "forward", poisoned)
    attempts_file = tmp_path / "attempts.json"
    with pytest.raises(SystemExit):
        with job(None, attempts_file, fingerprint_of(cfg)) as attempts:
            run(cfg, prepared, tmp_path, attempts)
    calls = []
    monkeypatch.setattr(CrossEntropy, "forward", lambda *a: calls.append(1))
    log = tmp_path / "retry.log"
    with pytest.raises(SystemExit):
        with job(log, attempts_file, fingerprint_of(cfg)) as attempts:
            run(cfg, prepared, tmp_path, attempts)
    assert calls == []  # it stopped before training
    text = log.read_text()
    assert "FAILED [non_finite] not retried: attempt 1 failed with non-finite loss" in text
    assert "Traceback" not in text  # one line, no traceback
    monkeypatch.setenv("CONTRASTLAB_RUN", "run-2")  # the next snakemake run, after a fix: it trains again
    with pytest.raises(TypeError):  # (the stand-in forward above returns nothing)
        with job(log, attempts_file, fingerprint_of(cfg)) as attempts:
            run(cfg, prepared, tmp_path, attempts)
    assert calls == [1]
    other = CellConfig.model_validate({**cfg.model_dump(), "seed": 4})  # a changed config starts afresh
    assert Attempts(attempts_file, fingerprint_of(other)).records == []


def test_a_training_job_imports_only_what_it_uses(tiny_deberta_dir, prepared, tmp_path):
    """No peft without LoRA, no scikit-learn, pandas or datasets in the training path."""
    import subprocess
    import sys

    code = f"""
import sys, json, torch
from pathlib import Path
from contrastlab.plan import layout
from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.training.train import train
cfg = CellConfig.model_validate(json.loads({json.dumps(json.dumps(cell(tiny_deberta_dir, epochs=1).model_dump()))}))
out = Path({str(tmp_path)!r})
train(cfg, RuntimeConfig(device="cpu", threads=1), {str(prepared)!r},
      {{k: out / v for k, v in layout.STAGE_FILES["train"].items()}}, {{k: out / v for k, v in layout.TRAIN_STATE.items()}})
print(sorted(m for m in ("peft", "sklearn", "pandas", "datasets", "matplotlib") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
