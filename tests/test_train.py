"""The training loop: outputs, resume after a crash or a preemption signal, and the NaN guard."""
import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from contrastlab import checkpoint
from contrastlab.cellconfig import CellConfig
from contrastlab.data import DataConfig, prepare
from contrastlab.model import load_tokenizer
from contrastlab.objectives import baseline
from contrastlab.train import NonFiniteLoss, train

OUTPUTS = ["weights.safetensors", "metrics.json", "predictions.csv", "history.csv", "config.json"]


@pytest.fixture(scope="module")
def prepared(tiny_deberta_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tiny-len32"
    prepare(DataConfig(source="embedded", max_train=200, max_eval=60), load_tokenizer(str(tiny_deberta_dir)), 32, out)
    return out


@pytest.fixture(scope="module")
def cfg(tiny_deberta_dir):
    return CellConfig.from_dict({
        "cell": "baseline", "family": "baseline", "seed": 3, "device": "cpu",
        "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 2},
        "train": {"epochs": 2, "batch_size": 16, "grad_accum": 2, "lr_top": 1e-3, "lr_head": 1e-3}})


@pytest.fixture(scope="module")
def reference_run(cfg, prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return out, train(cfg, prepared, out)


def _interrupt_on_call(monkeypatch, n, action):
    """Run `action()` inside the n-th micro-batch's loss computation."""
    calls = {"n": 0}
    forward = baseline.CrossEntropy.forward

    def counting(self, model, batch):
        calls["n"] += 1
        if calls["n"] == n:
            action()
        return forward(self, model, batch)

    monkeypatch.setattr(baseline.CrossEntropy, "forward", counting)


def test_train_writes_every_output_with_a_history_row_per_optimizer_step(reference_run, cfg):
    out, metrics = reference_run
    assert all((out / f).exists() for f in OUTPUTS) and not (out / "checkpoint.pt").exists()
    history = pd.read_csv(out / "history.csv")
    assert len(history) == metrics["steps"] == 2 * 7  # 200 examples / 16 = 13 micro-batches -> 7 steps
    assert {"loss", "loss_ce", "grad_norm", "lr", "lr_head", "time_s"} <= set(history.columns)
    assert np.isfinite(history["grad_norm"]).all() and (history["grad_norm"] > 0).all()
    assert history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean()  # it learns
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == metrics["n_test"] == 60
    assert metrics["accuracy"] == pytest.approx(preds["correct"].mean())
    assert 0 <= metrics["roc_auc"] <= 1 and metrics["peak_memory_mb"] > 0
    saved = load_file(str(out / "weights.safetensors"))
    assert saved and all(k.startswith(("encoder.encoder.layer.2.", "encoder.encoder.layer.3.", "classifier."))
                         for k in saved)
    assert json.loads((out / "config.json").read_text())["seed"] == cfg.seed


def test_crash_in_second_epoch_resumes_from_the_epoch_checkpoint_to_the_same_result(
        cfg, prepared, reference_run, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 20, lambda: (_ for _ in ()).throw(RuntimeError("power cut")))
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, prepared, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    state = checkpoint.peek(tmp_path / "checkpoint.pt", cfg.fingerprint())
    assert state["epoch"] == 1 and state["global_step"] == 7
    monkeypatch.undo()
    metrics = train(cfg, prepared, tmp_path)
    _assert_same_run(reference_run, tmp_path, metrics)


def test_preemption_signal_checkpoints_mid_epoch_and_the_retry_matches_an_uninterrupted_run(
        cfg, prepared, reference_run, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 5, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    with pytest.raises(checkpoint.Preempted) as exc:
        train(cfg, prepared, tmp_path)
    assert exc.value.code == 128 + signal.SIGUSR1
    monkeypatch.undo()
    metrics = train(cfg, prepared, tmp_path)
    _assert_same_run(reference_run, tmp_path, metrics)


def test_checkpoint_of_another_config_is_not_resumed(cfg, prepared, tmp_path, monkeypatch):
    _interrupt_on_call(monkeypatch, 16, lambda: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError):
        train(cfg, prepared, tmp_path)
    monkeypatch.undo()
    changed = CellConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "epochs": 1}})
    metrics = train(changed, prepared, tmp_path)
    assert metrics["steps"] == 7  # a resume would have started at step 8


def test_nan_loss_stops_the_cell_naming_it_and_the_step(cfg, prepared, tmp_path, monkeypatch):
    forward = baseline.CrossEntropy.forward
    calls = {"n": 0}

    def poisoned(self, model, batch):
        calls["n"] += 1
        terms = forward(self, model, batch)
        if calls["n"] == 4:  # second micro-batch of optimizer step 2
            terms = {k: v * float("nan") for k, v in terms.items()}
        return terms

    monkeypatch.setattr(baseline.CrossEntropy, "forward", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"cell baseline \(seed 3\): the loss is nan at epoch 1, optimizer step 2"):
        train(cfg, prepared, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def _assert_same_run(reference_run, out, metrics):
    ref_out, ref = reference_run
    for key in ("accuracy", "roc_auc", "macro_f1", "steps"):
        assert metrics[key] == ref[key], key
    h, h_ref = pd.read_csv(out / "history.csv"), pd.read_csv(ref_out / "history.csv")
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(h["grad_norm"], h_ref["grad_norm"], rtol=1e-5)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), pd.read_csv(ref_out / "predictions.csv"))


@pytest.mark.parametrize("contrast_set,size", [("effective", 32), ("micro_batch", 16)])
def test_contrast_set_is_the_effective_batch_unless_configured_per_micro_batch(
        cfg, prepared, tmp_path, monkeypatch, contrast_set, size):
    from contrastlab.losses import SupConLoss

    seen = []
    forward = SupConLoss.forward

    def recording(self, views, labels, view_mask=None, memory=None):
        seen.append(len(labels))
        return forward(self, views, labels, view_mask, memory)

    monkeypatch.setattr(SupConLoss, "forward", recording)
    d = cfg.to_dict()
    scl = CellConfig.from_dict({**d, "cell": "scl", "family": "scl",
                                "train": {**d["train"], "epochs": 1, "contrast_set": contrast_set}})
    metrics = train(scl, prepared, tmp_path)
    # 200 examples: 12 micro-batches of 16 and one of 8 (shuffled in) -> 7 optimizer steps;
    # one loss call per step over up to 32 examples, or one per micro-batch over up to 16
    assert metrics["steps"] == 7 and sum(seen) == 200 and max(seen) == size
    assert len(seen) == (7 if contrast_set == "effective" else 13)
