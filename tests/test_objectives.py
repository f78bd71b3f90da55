"""Every loss family builds on the tiny DeBERTa and on MiniLM, returns finite named terms, and
its gradient reaches the head (and, through the contrastive term, the encoder)."""
import math

import pytest
import torch
from transformers import AutoTokenizer

from contrastlab.model import LoraConfig, ModelConfig, build_classifier, resolve_model_path
from contrastlab.objectives import FAMILIES, build_objective, parse_params, source_files
from contrastlab.optim import OptimConfig, param_groups
from tiny_model import embedded_corpus_texts

CASES = [  # (family, params, expected term names besides "loss")
    ("baseline", {}, {"ce"}),
    ("rdrop", {}, {"ce1", "ce2", "kl"}),
    ("rdrop", {"stages": 2, "kl_reduction": "sum"}, {"ce1", "ce2", "kl"}),
    ("scl", {}, {"ce", "supcon"}),
    ("scl", {"views": "multi", "layer": -2}, {"ce", "supcon"}),
    ("scl", {"weighting": "convex", "alpha": 0.9, "tau": 0.3, "normalize": False}, {"ce", "supcon"}),
    ("token", {"k": 4}, {"ce", "supcon"}),
    ("token", {"k": 200, "layer": -2}, {"ce", "supcon"}),  # k beyond every sequence
    ("cluster", {"k": 8, "n_clusters": 3}, {"ce", "supcon"}),
    ("multilayer", {}, {"ce", "supcon"}),
    ("multilayer", {"level": "token", "layers": [-3, -1], "k": 4}, {"ce", "supcon"}),
    ("focal", {}, {"focal_ce", "supcon"}),
    ("focal", {"contrast": "focal", "proj_dim": 16}, {"focal_ce", "focal_supcon"}),
    ("focal", {"contrast": "margin", "memory": 2}, {"focal_ce", "margin"}),
    ("simcse", {}, {"ce", "supcon"}),
    ("simcse", {"stages": 1, "memory": 1}, {"ce", "supcon"}),
]
CONTRASTIVE_TERM = {"supcon", "focal_supcon", "margin"}


def make_batch(path, n=8, max_len=64):
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(embedded_corpus_texts(n), truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([0, 1] * (n // 2))}


@pytest.fixture(scope="module", params=["tiny_deberta", "minilm"])
def setup(request, tiny_deberta_dir):
    name = str(tiny_deberta_dir) if request.param == "tiny_deberta" else "embedded"
    model = build_classifier(ModelConfig(name=name, trainable_layers=2), num_labels=2)
    return model, make_batch(resolve_model_path(name))


@pytest.mark.parametrize("family,params,terms", CASES, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CASES)])
def test_family_returns_finite_terms_and_its_gradient_reaches_the_head(setup, family, params, terms):
    model, batch = setup
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    objective = build_objective(family, params, model)
    out = objective(model, batch)
    if params.get("memory"):
        out = objective(model, batch)  # second micro-batch: the memory is in use
    assert set(out) == {"loss", *terms}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values()), out
    out["loss"].backward()
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    if params.get("proj_dim"):
        assert objective.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family,params,terms", [c for c in CASES if c[2] & CONTRASTIVE_TERM],
                         ids=lambda x: x if isinstance(x, str) else "")
def test_contrastive_term_alone_carries_gradient_into_the_trainable_encoder(setup, family, params, terms):
    model, batch = setup
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    out = build_objective(family, params, model)(model, batch)
    term = next(iter(terms & CONTRASTIVE_TERM))
    assert out[term].item() > 0
    out[term].backward()
    trainable = [p for p in model.encoder.parameters() if p.requires_grad]
    assert sum(p.grad.abs().sum() for p in trainable if p.grad is not None) > 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_builds_with_reference_defaults_and_lists_existing_sources(setup, family):
    model, batch = setup
    objective = build_objective(family, {}, model)
    assert math.isfinite(objective(model, batch)["loss"].item())
    assert all(p.is_file() for p in source_files(family))


def test_rdrop_one_stage_runs_the_encoder_once_and_two_stage_twice(setup):
    model, batch = setup
    calls = []
    handle = model.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        for stages in (1, 2):
            calls.clear()
            out = build_objective("rdrop", {"stages": stages}, model)(model, batch)
            assert len(calls) == stages
            assert out["ce1"].item() != out["ce2"].item()  # two dropout draws in both
    finally:
        handle.remove()


def test_rdrop_loss_is_ce1_plus_ce2_plus_alpha_kl(setup):
    model, batch = setup
    out = build_objective("rdrop", {"alpha": 0.7}, model)(model, batch)
    assert out["loss"].item() == pytest.approx((out["ce1"] + out["ce2"] + 0.7 * out["kl"]).item(), rel=1e-6)


def test_gunel_convex_weighting_and_additive_weighting(setup):
    model, batch = setup
    model.eval()  # deterministic
    try:
        g = build_objective("scl", {"weighting": "convex", "alpha": 0.9}, model)(model, batch)
        a = build_objective("scl", {"alpha": 0.2}, model)(model, batch)
    finally:
        model.train()
    assert g["loss"].item() == pytest.approx((0.1 * g["ce"] + 0.9 * g["supcon"]).item(), rel=1e-5)
    assert a["loss"].item() == pytest.approx((a["ce"] + 0.2 * a["supcon"]).item(), rel=1e-5)


def test_memory_enlarges_the_contrast_set_on_later_micro_batches(setup):
    model, batch = setup
    model.eval()
    try:
        plain = build_objective("scl", {}, model)
        with_memory = build_objective("scl", {"memory": 2}, model)
        first = with_memory(model, batch)["supcon"].item()
        assert first == pytest.approx(plain(model, batch)["supcon"].item(), rel=1e-6)  # empty queue
        second = with_memory(model, batch)["supcon"].item()
        with_memory(model, batch)
        with_memory(model, batch)
    finally:
        model.train()
    assert second != pytest.approx(first, rel=1e-4)
    assert len(with_memory.queues[0].items) == 2


def test_projection_head_trains_with_the_head_learning_rate(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir)), num_labels=2)
    model.objective = build_objective("focal", {"proj_dim": 8}, model)
    head = [g for g in param_groups(model, OptimConfig()) if g["name"].startswith("head")]
    names = {n for g in head for n in g["param_names"]}
    assert {"objective.proj.weight", "objective.proj.bias"} <= names


def test_under_lora_head_and_adapters_get_gradients_and_base_weights_do_not(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), lora=LoraConfig()), num_labels=2)
    batch = make_batch(str(tiny_deberta_dir))
    out = build_objective("token", {"k": 4}, model)(model, batch)
    out["loss"].backward()
    named = dict(model.named_parameters())
    lora = {n: p for n, p in named.items() if "lora_" in n}
    base = [p for n, p in named.items() if n.startswith("encoder") and "lora_" not in n]
    assert lora and all(p.grad is not None for p in lora.values())
    assert all(p.grad.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at 0, A's grad too
    assert model.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in base)


@pytest.mark.parametrize("family,params,match", [
    ("rdrop", {"stages": 3}, "loss.stages"),
    ("rdrop", {"kl_reduction": "none"}, "loss.kl_reduction"),
    ("scl", {"views": "two"}, "loss.views"),
    ("scl", {"contrast": "triplet"}, "loss.contrast"),
    ("scl", {"weighting": "convex", "alpha": 1.5}, "loss.alpha"),
    ("token", {"k": 0}, "loss.k"),
    ("multilayer", {"level": "word"}, "loss.level"),
    ("scl", {"temperature": 0.1}, "loss.temperature"),
])
def test_bad_params_are_errors_naming_the_key(family, params, match):
    with pytest.raises(ValueError, match=match):
        parse_params(family, params)


def test_out_of_range_layer_fails_at_build_naming_the_range(setup):
    model, _ = setup
    with pytest.raises(ValueError, match="out of range"):
        build_objective("multilayer", {"layers": [0, 40]}, model)


@pytest.mark.parametrize("family,params", [("scl", {"views": "multi", "layer": -2}),
                                           ("token", {"k": 4}), ("simcse", {"stages": 1})])
def test_forward_group_over_micro_batches_equals_one_forward_over_their_union(setup, family, params):
    """The effective-batch contrast set: two micro-batches in one call give the loss and gradient
    of one batch holding both (dropout off), and anchors find positives across micro-batches."""
    model, batch = setup
    model.eval()  # no dropout: both sides see the same views
    objective = build_objective(family, params, model)
    halves = [_trim({k: v[i:i + 2] for k, v in batch.items()}) for i in (0, 2)]  # labels [0, 1] in each
    union = _trim({k: v[:4] for k, v in batch.items()})
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses, grads = [], []
    for call in (lambda: objective.forward_group(model, halves), lambda: objective(model, union)):
        model.zero_grad(set_to_none=True)
        out = call()
        out["loss"].backward()
        losses.append(out["loss"].item())
        grads.append([p.grad.clone() for p in trainable if p.grad is not None])
        if family != "simcse":
            assert out["supcon"].item() > 0  # labels 0 and 1 have their positives in the other half
    model.train()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _trim(batch):
    """Cut the padding columns no row of the batch uses (each micro-batch pads to its longest)."""
    width = int(batch["attention_mask"].sum(1).max())
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


def test_supcon_of_one_micro_batch_alone_finds_no_positive_where_the_union_does(setup):
    model, batch = setup
    model.eval()
    objective = build_objective("scl", {}, model)
    half = {k: v[:2] for k, v in batch.items()}  # labels [0, 1]: no anchor has a positive
    assert objective(model, half)["supcon"].item() == 0.0
    model.train()
