"""Model selection reads the validation split, never the test split, and the test split is scored
once per run, with the selected weights.

The fixture makes the two splits disagree: its validation split is the test split with every label
flipped (two classes), so at every evaluation val accuracy = 1 - test accuracy. Selecting on
validation then picks the evaluation with the worst test accuracy, and selecting on test the best:
a run that peeks at test cannot pass."""
import json

import numpy as np
import pandas as pd
import pytest

from contrastlab.plan import layout
from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
from contrastlab.data.splits import prepare
from contrastlab.training.model import load_tokenizer
from contrastlab.training.train import Trainer, train

RUNTIME = RuntimeConfig(device="cpu", threads=1, log_every=100)


@pytest.fixture(scope="module")
def flipped_val(tiny_deberta_dir, tmp_path_factory):
    """A prepared dataset whose val split is its test split with the labels flipped."""
    out = tmp_path_factory.mktemp("flipped") / "tiny-len32"
    prepare(DataConfig(source="embedded", max_train=96, max_eval=60), load_tokenizer(str(tiny_deberta_dir)), 32, out)
    tokens = out / layout.PREPARED_FILES["tokens"]
    with np.load(tokens) as z:
        arrays = dict(z)
    assert set(np.unique(arrays["test_labels"])) == {0, 1}
    for key in ("ids", "offsets", "rows"):
        arrays[f"val_{key}"] = arrays[f"test_{key}"]
    arrays["val_labels"] = 1 - arrays["test_labels"]
    np.savez(tokens, **arrays)
    summary = out / layout.PREPARED_FILES["summary"]
    meta = json.loads(summary.read_text())
    meta["counts"]["val"] = {n: int((arrays["val_labels"] == i).sum()) for i, n in enumerate(meta["names"])}
    summary.write_text(json.dumps(meta))
    return out


def test_best_val_selects_on_validation_and_scores_test_once(tiny_deberta_dir, flipped_val, tmp_path, monkeypatch):
    cfg = CellConfig.model_validate({
        "cell": "baseline", "family": "baseline", "seed": 1,
        "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 2},
        "train": {"epochs": 3, "batch_size": 16, "grad_accum": 1, "lr_top": 3e-3, "lr_head": 1e-2,
                  "warmup_ratio": 0, "eval_every": 1, "select": "best_val"}})
    scored = []  # the splits the run scores, in order
    predict = Trainer.predict
    monkeypatch.setattr(Trainer, "predict", lambda self, split, bs: (scored.append(split), predict(self, split, bs))[1])
    out = {k: tmp_path / v for k, v in layout.STAGE_FILES["train"].items()}
    state = {k: tmp_path / v for k, v in layout.TRAIN_STATE.items()}
    metrics = train(cfg, RUNTIME, flipped_val, out, state)

    evals = pd.read_csv(out["epochs"])
    # the evaluations differ, so selecting on test (the worst validation) would pick another one
    assert evals["val_accuracy"].nunique() > 1
    # test is scored once, after training, and every evaluation scores validation
    assert scored == ["val"] * len(evals) + ["test"]
    # the selected step is the best of the recorded validation accuracies (ties: lower loss, then earlier)
    best = evals.sort_values(["val_accuracy", "val_loss"], ascending=[False, True], kind="stable").iloc[0]
    assert metrics["selected_step"] == best["step"] and metrics["val_accuracy"] == best["val_accuracy"]
    # and those are validation accuracies: the test accuracy of the selected weights is their mirror
    assert metrics["accuracy"] == pytest.approx(1 - best["val_accuracy"])
