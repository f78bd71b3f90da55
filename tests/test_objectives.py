"""Every loss family builds on the tiny DeBERTa and on MiniLM, returns finite named terms, and
its gradient reaches the head (and, through the contrastive term, the encoder). Terms are each
call's share of the optimizer step: split into micro-batches, they add up to the whole batch's."""
import importlib.util
import math

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from contrastlab.plan.config import ConfigError, ContrastParams, LoraConfig, ModelConfig, TrainConfig
from contrastlab.objectives.families import NAMES, build_objective, objective_module, parse_params, spec
from contrastlab.objectives.layers import frozen_reads
from contrastlab.plan.hfconfig import model_location
from contrastlab.training.model import build_classifier
from contrastlab.training.optim import param_groups
from tiny_model import embedded_corpus_texts

CASES = [  # (family, params, expected term names besides "loss")
    ("baseline", {}, {"ce"}),
    ("rdrop", {}, {"ce", "ce1", "ce2", "kl"}),
    ("rdrop", {"stages": 2, "kl_reduction": "sum"}, {"ce", "ce1", "ce2", "kl"}),
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
CONTRASTIVE_FAMILIES = [f for f in NAMES if issubclass(spec(f).Params, ContrastParams)]


def make_batch(path, n=8, max_len=64):
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(embedded_corpus_texts(n), truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([0, 1] * (n // 2))}


def run(objective, model, batch):
    """The plain per-batch terms: one micro-batch that is the whole optimizer step."""
    return objective(model, [batch], len(batch["labels"]))


def rows(batch, start, stop):
    return _trim({k: v[start:stop] for k, v in batch.items()})


def _trim(batch):
    """Cut the padding columns no row of the batch uses (each micro-batch pads to its longest)."""
    width = int(batch["attention_mask"].sum(1).max())
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


def trainable(*modules):
    return [(n, p) for m in modules for n, p in m.named_parameters() if p.requires_grad]


def grads_of(named):
    return {n: None if p.grad is None else p.grad.clone() for n, p in named}


def assert_same_grads(a, b, rtol=1e-4, atol=1e-6):
    assert a.keys() == b.keys()
    assert any(g is not None and g.abs().sum() > 0 for g in a.values())
    for n in a:
        assert (a[n] is None) == (b[n] is None), n
        if a[n] is not None:
            torch.testing.assert_close(a[n], b[n], rtol=rtol, atol=atol, msg=lambda m: f"{n}: {m}")


class ParityDropout(nn.Module):
    """A deterministic stand-in for the head's dropout: even calls keep an input's positive entries,
    odd calls its negative ones (x2). Two draws on one input differ (R-Drop has something to
    compare), and a sample's draw depends on its own values and the call's parity only, so it is
    the same whichever micro-batch the sample is in. The mask flips only where an entry is 0, so
    float noise between batch shapes cannot change the output by more than that noise."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        keep = x > 0 if self.calls % 2 == 0 else x < 0
        self.calls += 1
        return x * keep * 2.0


@pytest.fixture(scope="module", params=["tiny_deberta", "minilm"])
def setup(request, tiny_deberta_dir):
    name = str(tiny_deberta_dir) if request.param == "tiny_deberta" else "embedded"
    model = build_classifier(ModelConfig(name=name, trainable_layers=2), num_labels=2)
    return model, make_batch(model_location(name)[1])


@pytest.fixture(scope="module")
def tiny(tiny_deberta_dir):
    """The tiny DeBERTa (4 layers) with its top 2 layers training, and a batch."""
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=2), num_labels=2)
    return model, make_batch(str(tiny_deberta_dir))


@pytest.fixture(autouse=True)
def _train_mode_after(request):
    """Tests switch the shared model to eval mode; put it back in train mode afterwards."""
    yield
    for name in ("setup", "tiny"):
        if name in request.fixturenames:
            request.getfixturevalue(name)[0].train()


@pytest.mark.parametrize("family,params,terms", CASES, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CASES)])
def test_family_returns_finite_terms_and_its_gradient_reaches_the_head(setup, family, params, terms):
    model, batch = setup
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    objective = build_objective(family, params, model)
    out = run(objective, model, batch)
    if params.get("memory"):
        out = run(objective, model, batch)  # second micro-batch: the memory is in use
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
    out = run(build_objective(family, params, model), model, batch)
    term = next(iter(terms & CONTRASTIVE_TERM))
    assert out[term].item() > 0
    out[term].backward()
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    assert sum(p.grad.abs().sum() for p in encoder if p.grad is not None) > 0


@pytest.mark.parametrize("family", NAMES)
def test_every_family_builds_with_reference_defaults_and_its_objective_module_exists(setup, family):
    model, batch = setup
    objective = build_objective(family, {}, model)
    assert math.isfinite(run(objective, model, batch)["loss"].item())
    found = importlib.util.find_spec(objective_module(family))
    assert found is not None and found.origin.endswith("objective.py")


def test_rdrop_one_stage_runs_the_encoder_once_and_two_stage_twice(setup):
    model, batch = setup
    model.train()
    calls = []
    handle = model.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        for stages in (1, 2):
            calls.clear()
            out = run(build_objective("rdrop", {"stages": stages}, model), model, batch)
            assert len(calls) == stages
            assert out["ce1"].item() != out["ce2"].item()  # two dropout draws in both
    finally:
        handle.remove()


def test_rdrop_loss_is_ce1_plus_ce2_plus_alpha_kl(setup):
    model, batch = setup
    model.train()
    out = run(build_objective("rdrop", {"alpha": 0.7}, model), model, batch)
    assert out["loss"].item() == pytest.approx((out["ce1"] + out["ce2"] + 0.7 * out["kl"]).item(), rel=1e-6)
    assert out["ce"].item() == pytest.approx((out["ce1"] + out["ce2"]).item() / 2, rel=1e-6)


def test_rdrop_kl_reduction_mean_is_batchmean_over_the_number_of_classes(tiny_deberta_dir, monkeypatch):
    """kl_reduction "mean" averages the symmetric KL over the B x C elements (C = 3 here), so it is
    batchmean / C, and "sum" is batchmean x B; never one silently standing in for another."""
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=2), num_labels=3).eval()
    drop = ParityDropout()
    monkeypatch.setattr(model, "dropout", drop)
    batch = make_batch(str(tiny_deberta_dir))
    batch["labels"] = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    kl = {}
    with torch.no_grad():
        for reduction in ("batchmean", "mean", "sum"):
            drop.calls = 0
            kl[reduction] = run(build_objective("rdrop", {"kl_reduction": reduction}, model), model, batch)["kl"].item()
    assert kl["batchmean"] > 1e-4
    assert kl["mean"] == pytest.approx(kl["batchmean"] / 3, rel=1e-5)
    assert kl["sum"] == pytest.approx(kl["batchmean"] * 8, rel=1e-5)


@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
def test_rdrop_terms_and_gradient_under_grad_accumulation_equal_the_whole_batch(tiny, monkeypatch, reduction, stages):
    """Two micro-batches of 4 through objective(model, [mb], 8), summed, give the terms and the
    gradient of one call on the 8, for every kl_reduction (the head's dropout is a deterministic
    stand-in and the encoder is in eval mode, so both sides see the same outputs)."""
    model, batch = tiny
    model.eval()
    drop = ParityDropout()
    monkeypatch.setattr(model, "dropout", drop)
    objective = build_objective("rdrop", {"kl_reduction": reduction, "stages": stages, "alpha": 0.5}, model)
    params = trainable(model)

    model.zero_grad(set_to_none=True)
    drop.calls = 0
    whole = run(objective, model, batch)
    whole["loss"].backward()
    whole_grads = grads_of(params)

    model.zero_grad(set_to_none=True)
    drop.calls = 0
    split = {}
    for mb in (rows(batch, 0, 4), rows(batch, 4, 8)):
        out = objective(model, [mb], 8)
        out["loss"].backward()
        split = {k: split.get(k, 0) + v.detach() for k, v in out.items()}
    assert whole["kl"].item() > 1e-5  # the two draws differ: the KL is not trivially 0
    for term in ("loss", "kl", "ce1", "ce2"):
        assert split[term].item() == pytest.approx(whole[term].item(), rel=1e-4), term
    assert_same_grads(grads_of(params), whole_grads)


def test_gunel_convex_weighting_and_additive_weighting(setup):
    model, batch = setup
    model.eval()  # deterministic
    g = run(build_objective("scl", {"weighting": "convex", "alpha": 0.9}, model), model, batch)
    a = run(build_objective("scl", {"alpha": 0.2}, model), model, batch)
    assert g["loss"].item() == pytest.approx((0.1 * g["ce"] + 0.9 * g["supcon"]).item(), rel=1e-5)
    assert a["loss"].item() == pytest.approx((a["ce"] + 0.2 * a["supcon"]).item(), rel=1e-5)


def test_memory_enlarges_the_contrast_set_on_later_micro_batches(setup):
    model, batch = setup
    model.eval()
    plain = build_objective("scl", {}, model)
    with_memory = build_objective("scl", {"memory": 2}, model)
    first = run(with_memory, model, batch)["supcon"].item()
    assert first == pytest.approx(run(plain, model, batch)["supcon"].item(), rel=1e-6)  # empty queue
    second = run(with_memory, model, batch)["supcon"].item()
    run(with_memory, model, batch)
    run(with_memory, model, batch)
    assert second != pytest.approx(first, rel=1e-4)
    assert len(with_memory.queues[0].items) == 2


def test_simcse_memory_queues_views_as_negatives_only(tiny):
    """SimCSE's queued views carry the label -1 ("no sample"), never a sample index: a queued view
    of the earlier batch's sample i must not be a positive of the new batch's sample i. The loss
    with a filled queue equals NT-Xent built by hand where each anchor's only positive is its
    twin view and every current and queued view is in its denominator."""
    model, batch = tiny
    model.eval()  # the two encoder passes agree: each view is its sample's [CLS]
    tau = 0.05
    objective = build_objective("simcse", {"memory": 2, "tau": tau}, model)
    first, second = rows(batch, 0, 4), rows(batch, 4, 8)
    with torch.no_grad():
        objective(model, [first], 4)
        got = objective(model, [second], 4)["supcon"].item()
        feats, labels = objective.queues[0].get()
        assert len(labels) == 16 and (labels == -1).all()  # both batches' 2 x 4 views, no sample index

        def cls(b):
            return model.encode(b["input_ids"], b["attention_mask"]).last_hidden_state[:, 0].double()

        current = nn.functional.normalize(cls(second), dim=-1).repeat_interleave(2, 0)  # [8, D]: twins adjacent
        queued = nn.functional.normalize(cls(first), dim=-1).repeat_interleave(2, 0)
        losses = []
        for a in range(8):
            twin = a + 1 if a % 2 == 0 else a - 1
            sims = torch.cat([current[a] @ current.T, current[a] @ queued.T]) / tau
            denominator = torch.logsumexp(torch.cat([sims[:a], sims[a + 1:]]), 0)
            losses.append(denominator - sims[twin])
    assert got == pytest.approx(torch.stack(losses).mean().item(), rel=1e-4)


def test_projection_head_trains_with_the_head_learning_rate(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir)), num_labels=2)
    objective = build_objective("focal", {"proj_dim": 8}, model)
    cfg = TrainConfig(lr_head=3e-4)
    head = [g for g in param_groups(model, cfg, objective) if g["name"].startswith("head")]
    names = {n for g in head for n in g["param_names"]}
    assert {"objective.proj.weight", "objective.proj.bias"} <= names
    assert all(g["lr"] == pytest.approx(3e-4) for g in head)


def test_under_lora_head_and_adapters_get_gradients_and_base_weights_do_not(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), lora=LoraConfig()), num_labels=2)
    batch = make_batch(str(tiny_deberta_dir))
    out = run(build_objective("token", {"k": 4}, model), model, batch)
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
    with pytest.raises(ConfigError, match=match):
        parse_params(family, params)


def test_out_of_range_layer_fails_at_build_naming_the_range(setup):
    model, _ = setup
    with pytest.raises(ValueError, match="out of range"):
        build_objective("multilayer", {"layers": [0, 40]}, model)


@pytest.mark.parametrize("family,params", [("scl", {"views": "multi", "layer": -2}),
                                           ("token", {"k": 4}), ("simcse", {"stages": 1})])
def test_one_call_over_micro_batches_equals_one_call_over_their_union(setup, family, params):
    """The effective-batch contrast set: two micro-batches in one call give the loss and gradient
    of one batch holding both (dropout off), and anchors find positives across micro-batches."""
    model, batch = setup
    model.eval()  # no dropout: both sides see the same views
    objective = build_objective(family, params, model)
    halves = [rows(batch, i, i + 2) for i in (0, 2)]  # labels [0, 1] in each
    union = rows(batch, 0, 4)
    params_ = trainable(model)
    losses, grads = [], []
    for call in (lambda: objective(model, halves, 4), lambda: objective(model, [union], 4)):
        model.zero_grad(set_to_none=True)
        out = call()
        out["loss"].backward()
        losses.append(out["loss"].item())
        grads.append(grads_of(params_))
        if family != "simcse":
            assert out["supcon"].item() > 0  # labels 0 and 1 have their positives in the other half
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert_same_grads(*grads)


def test_supcon_of_one_micro_batch_alone_finds_no_positive_where_the_union_does(setup):
    model, batch = setup
    model.eval()
    objective = build_objective("scl", {}, model)
    half = {k: v[:2] for k, v in batch.items()}  # labels [0, 1]: no anchor has a positive
    assert run(objective, model, half)["supcon"].item() == 0.0


GRAD_CACHE_CASES = [("scl", {"views": "multi", "layer": -2}), ("token", {"k": 4}), ("simcse", {"stages": 1}),
                    ("simcse", {}), ("focal", {"contrast": "focal", "proj_dim": 8}),
                    ("multilayer", {"level": "token", "layers": [-2, -1], "k": 4}),
                    ("multilayer", {"layers": [0, 1]})]  # views no trainable parameter feeds


@pytest.mark.parametrize("family,params", GRAD_CACHE_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(GRAD_CACHE_CASES)])
def test_grad_cache_gives_the_terms_and_gradients_of_one_call_over_all_micro_batches(tiny, family, params):
    """forward_backward_cached over two micro-batches: the same terms, and the same gradient in
    every trainable parameter (the objective's projection included), as objective(model, both, n)
    followed by backward (dropout off)."""
    model, batch = tiny
    model.eval()
    objective = build_objective(family, params, model)
    halves = [rows(batch, 0, 4), rows(batch, 4, 8)]
    params_ = trainable(model, objective)

    for m in (model, objective):
        m.zero_grad(set_to_none=True)
    plain = objective(model, halves, 8)
    plain["loss"].backward()
    plain_grads = grads_of(params_)

    for m in (model, objective):
        m.zero_grad(set_to_none=True)
    backwards = []
    cached = objective.forward_backward_cached(model, halves, 8, lambda t: backwards.append(1) or t.backward())
    assert backwards == [1]  # the caller's backward runs once, on the loss
    assert set(cached) == set(plain)
    for term in plain:
        assert not cached[term].requires_grad
        assert cached[term].item() == pytest.approx(plain[term].item(), rel=1e-5), term
    assert_same_grads(grads_of(params_), plain_grads)


@pytest.mark.parametrize("family,params", [("scl", {"views": "multi", "layer": -2}), ("simcse", {})])
def test_grad_cache_replays_each_micro_batch_with_its_own_dropout(tiny, family, params):
    """In train mode the re-run of each micro-batch restores its random state: from the same seed,
    GradCache's terms and gradients equal one call over both micro-batches with dropout on."""
    model, batch = tiny
    model.train()
    objective = build_objective(family, params, model)
    halves = [rows(batch, 0, 4), rows(batch, 4, 8)]
    params_ = trainable(model, objective)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    plain = objective(model, halves, 8)
    plain["loss"].backward()
    plain_grads = grads_of(params_)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    cached = objective.forward_backward_cached(model, halves, 8, lambda t: t.backward())
    assert cached["loss"].item() == pytest.approx(plain["loss"].item(), rel=1e-5)
    assert_same_grads(grads_of(params_), plain_grads)


def _reaches_trainable_encoder(term, model) -> bool:
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    if not term.requires_grad:
        return False
    grads = torch.autograd.grad(term, params, allow_unused=True)
    return any(g is not None and g.abs().sum() > 0 for g in grads)


REACH_CASES = ([(f, {}) for f in CONTRASTIVE_FAMILIES]
               + [(f, {"layer": l, **extra}) for l in range(4)
                  for f, extra in (("token", {"k": 4}), ("cluster", {"k": 8, "n_clusters": 3}),
                                   ("scl", {"views": "multi"}))]
               + [("multilayer", {"layers": [l], **extra}) for l in range(4)
                  for extra in ({}, {"level": "token", "k": 4})]
               + [("multilayer", {"layers": [0, 1], **extra}) for extra in ({}, {"level": "token", "k": 4})])


@pytest.mark.parametrize("family,params", REACH_CASES, ids=[f"{f}-{p}" for f, p in REACH_CASES])
def test_static_frozen_layer_check_agrees_with_autograd(tiny, family, params):
    """With the top 2 of 4 layers training, the contrastive term alone has a gradient in some
    trainable encoder parameter exactly when some layer it reads is not in
    contrastlab.objectives.layers.frozen_reads (the DAG-build check): always when that is empty, never for
    a term on frozen layers only ([0], [1], [0, 1])."""
    model, batch = tiny
    model.train()
    torch.manual_seed(0)
    objective = build_objective(family, params, model)
    layers = objective.params.contrast_layers()
    frozen = frozen_reads(layers, 4, 2, False)
    out = run(objective, model, batch)
    term = out[objective.term]
    assert torch.isfinite(term)
    reads_a_trained_layer = len(frozen) < len({l % 4 for l in layers})
    assert _reaches_trainable_encoder(term, model) == reads_a_trained_layer, (layers, frozen)
    if not frozen:
        assert reads_a_trained_layer


def test_contrastive_families_are_the_contrast_params_ones():
    assert set(CONTRASTIVE_FAMILIES) == {"cluster", "focal", "multilayer", "scl", "simcse", "token"}
