"""Mixed precision: what setup_precision gives per train.precision, and that every family's loss
under bf16 autocast is its float32 value to bf16 accuracy, with the loss math in float32.

These check numbers, not speed: they run bf16 and fp16 with allow_slow=True, so that they also pass
(emulated, a little slower) on a CPU without native bf16 or fp16 (tests/test_precision_choice.py
checks what happens without it)."""
import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from contrastlab.training import precision as precision_module
from contrastlab.plan.config import ModelConfig
from contrastlab.objectives.families import NAMES, build_objective
from contrastlab.training.model import build_classifier
from contrastlab.training.precision import Precision, PrecisionUnsupported, check_supported, setup_precision
from tiny_model import embedded_corpus_texts

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=2), num_labels=2)
    tok = AutoTokenizer.from_pretrained(tiny_deberta_dir)
    enc = tok(embedded_corpus_texts(8), truncation=True, max_length=64, padding=True, return_tensors="pt")
    return model, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                   "labels": torch.tensor([0, 1] * 4)}


# ---- setup_precision -------------------------------------------------------------------------

def test_fp32_has_no_scaler_and_no_autocast():
    prec = setup_precision("fp32", CPU)
    assert isinstance(prec, Precision) and prec.scaler is None and prec.dtype == torch.float32
    with prec.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_bf16_on_the_cpu_autocasts_matmuls_and_needs_no_scaler():
    prec = setup_precision("bf16", CPU, allow_slow=True)
    assert prec.scaler is None and prec.dtype == torch.bfloat16
    with prec.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_fp16_has_a_grad_scaler_whose_unscaled_gradient_is_the_plain_one():
    prec = setup_precision("fp16", CPU, allow_slow=True)
    assert isinstance(prec.scaler, torch.amp.GradScaler) and prec.scaler.is_enabled()
    w = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    prec.backward((w * torch.tensor([0.5, 1.0, 2.0])).sum())
    assert w.grad[0].item() == pytest.approx(0.5 * prec.scaler.get_scale())  # scaled against underflow
    prec.unscale(opt)
    assert w.grad.tolist() == pytest.approx([0.5, 1.0, 2.0])
    prec.step(opt)
    assert w.detach().tolist() == pytest.approx([0.95, -2.1, 2.8])


def test_fp16_step_with_an_overflowed_gradient_is_skipped_and_the_scale_drops():
    prec = setup_precision("fp16", CPU, allow_slow=True)
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    scale = prec.scaler.get_scale()
    prec.backward((w * torch.tensor([float("inf"), 1.0])).sum())
    prec.unscale(opt)
    prec.step(opt)
    assert w.detach().tolist() == [1.0, 2.0] and prec.scaler.get_scale() < scale


def test_bf16_on_a_gpu_without_any_bf16_is_an_error_naming_train_precision_even_when_slow_is_allowed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(PrecisionUnsupported, match=r"train\.precision = bf16.*Old GPU.*no bfloat16 support"):
        setup_precision("bf16", torch.device("cuda"), allow_slow=True)
    check_supported("fp32", torch.device("cuda"))  # fp32 runs anywhere


def test_fp16_on_a_cpu_without_float16_autocast_is_an_error_naming_train_precision(monkeypatch):
    monkeypatch.setattr(precision_module, "_cpu_fp16_autocast", lambda: False)
    with pytest.raises(PrecisionUnsupported, match=r"train\.precision = fp16"):
        setup_precision("fp16", CPU, allow_slow=True)
    assert setup_precision("bf16", CPU, allow_slow=True).scaler is None  # bf16 is unaffected


def test_tf32_setting_reaches_the_cuda_matmul_flags(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", torch.backends.cuda.matmul.allow_tf32)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    setup_precision("fp32", torch.device("cuda"), tf32=False)
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    setup_precision("fp32", torch.device("cuda"), tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 is True and torch.backends.cudnn.allow_tf32 is True


# ---- every family under bf16 autocast ----------------------------------------------------------

BF16_CASES = [(f, {}) for f in NAMES] + [("focal", {"contrast": "focal", "proj_dim": 16}),
                                         ("focal", {"contrast": "margin"}), ("scl", {"views": "multi"}),
                                         ("multilayer", {"level": "token", "k": 8})]


@pytest.mark.parametrize("family,params", BF16_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BF16_CASES)])
def test_family_loss_under_bf16_autocast_is_close_to_fp32_and_its_terms_are_float32(tiny, family, params):
    model, batch = tiny
    model.eval()  # the same views on both sides
    try:
        objective = build_objective(family, params, model)
        with torch.no_grad():
            fp32 = objective(model, [batch], 8)
            with setup_precision("bf16", CPU, allow_slow=True).autocast():
                bf16 = objective(model, [batch], 8)
    finally:
        model.train()
    assert set(bf16) == set(fp32)
    for term in fp32:
        assert bf16[term].dtype == torch.float32, term
        assert bf16[term].item() == pytest.approx(fp32[term].item(), rel=2e-2, abs=1e-3), term


@pytest.mark.parametrize("family,params", [("scl", {"views": "multi"}), ("token", {"k": 8}), ("rdrop", {})])
def test_bf16_training_step_gives_finite_float32_gradients(tiny, family, params):
    model, batch = tiny
    model.train()
    torch.manual_seed(0)
    objective = build_objective(family, params, model)
    prec = setup_precision("bf16", CPU, allow_slow=True)
    model.zero_grad(set_to_none=True)
    with prec.autocast():
        out = objective(model, [batch], 8)
    assert all(v.dtype == torch.float32 for v in out.values())
    prec.backward(out["loss"])
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
