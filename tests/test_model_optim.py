"""Which parameters train, and the learning rate and weight decay each group gets (the reference recipe)."""
import pytest
import torch
from torch import nn

from contrastlab.plan.config import ConfigError, LoraConfig, ModelConfig, TrainConfig, validate
from contrastlab.objectives.families import build_objective
from contrastlab.training.model import build_classifier, find_layers, trainable_state_dict
from contrastlab.training.optim import build_optimizer, param_groups


@pytest.fixture(scope="module")
def model(tiny_deberta_dir):
    return build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=2), num_labels=3)


def test_only_top_layers_and_head_train(model):
    layers = find_layers(model.encoder)
    assert len(layers) == 4
    for i, layer in enumerate(layers):
        assert all(p.requires_grad == (i >= 2) for p in layer.parameters()), f"layer {i}"
    assert not any(p.requires_grad for p in model.encoder.embeddings.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert model.classifier.out_features == 3


def test_layerwise_lr_decays_from_the_top_and_head_has_its_own(model):
    cfg = TrainConfig(lr_top=2e-5, lr_decay=0.5, lr_head=1e-4, weight_decay=0.01)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["layer3"]["lr"] == pytest.approx(2e-5)
    assert groups["layer2"]["lr"] == pytest.approx(1e-5)
    assert groups["head"]["lr"] == pytest.approx(1e-4)
    assert not any(name.startswith(("layer0", "layer1")) for name in groups)
    # no weight decay on biases and LayerNorm weights
    assert all("bias" in n or "LayerNorm" in n for n in groups["layer3_nodecay"]["param_names"])
    assert groups["layer3_nodecay"]["weight_decay"] == 0.0 and groups["layer3"]["weight_decay"] == 0.01
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert sum(len(g["params"]) for g in groups.values()) == n_trainable


def _layer_norm_weights(*modules):
    return {id(m.weight) for module in modules for m in module.modules()
            if (isinstance(m, nn.LayerNorm) or "layernorm" in type(m).__name__.lower()) and m.weight is not None}


@pytest.mark.parametrize("name", ["tiny_deberta", "minilm"])
def test_exactly_the_one_dimensional_parameters_and_layer_norm_weights_skip_weight_decay(tiny_deberta_dir, name):
    """Every parameter with fewer than 2 dims and every LayerNorm weight is in a group with
    weight_decay 0, and every other trainable parameter (the objective's projection included) decays."""
    path = str(tiny_deberta_dir) if name == "tiny_deberta" else "embedded"
    model = build_classifier(ModelConfig(name=path, trainable_layers=3), num_labels=2)
    objective = build_objective("focal", {"proj_dim": 8}, model)
    groups = param_groups(model, TrainConfig(weight_decay=0.05), objective)
    norms = _layer_norm_weights(model, objective)
    assert norms  # the check below does cover LayerNorm weights
    seen = {}
    for g in groups:
        for pname, p in zip(g["param_names"], g["params"]):
            assert id(p) not in seen, f"{pname} is in two groups"
            seen[id(p)] = pname
            no_decay = p.ndim < 2 or id(p) in norms
            assert g["weight_decay"] == (0.0 if no_decay else 0.05), f"{pname} ({tuple(p.shape)}) in {g['name']}"
    trainable = {id(p) for m in (model, objective) for p in m.parameters() if p.requires_grad}
    assert set(seen) == trainable  # every trainable parameter once, no frozen one
    assert "objective.proj.weight" in seen.values() and "objective.proj.bias" in seen.values()
    decayed = [n for g in groups if g["weight_decay"] for n in g["param_names"]]
    assert "objective.proj.weight" in decayed and "model.classifier.weight" in decayed


def test_scheduler_warms_up_then_decays_linearly(model):
    opt = build_optimizer(model, TrainConfig(warmup_ratio=0.1, lr_head=1e-4), total_steps=100)
    head = next(g for g in opt.optimizer.param_groups if g["name"] == "head")
    lrs = []
    for _ in range(100):
        lrs.append(head["lr"])
        opt.optimizer.step()
        opt.scheduler.step()
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(1e-4) and lrs[55] == pytest.approx(0.5e-4)


def test_logged_lrs_are_the_top_layer_and_the_head(model):
    cfg = TrainConfig(lr_top=3e-5, lr_decay=0.5, lr_head=2e-4, warmup_ratio=0.0)
    opt = build_optimizer(model, cfg, total_steps=10)
    assert opt.lrs() == (pytest.approx(3e-5), pytest.approx(2e-4))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in opt.params} == trainable and len(opt.params) == len(trainable)


def test_nonpositive_lr_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.lr_head = 0\.0: must be > 0"):
        validate(TrainConfig, {"lr_head": 0.0}, "config", ("train",))


def test_lora_trains_adapters_and_head_only(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), lora=LoraConfig(r=4)), num_labels=2)
    ids = torch.randint(5, 100, (2, 7))
    model(ids, torch.ones_like(ids)).sum().backward()
    for name, p in model.named_parameters():
        trains = "lora_" in name or name.startswith("classifier.")
        assert p.requires_grad == trains, name
        if trains and "lora_A" not in name:  # lora_B starts at zero, so lora_A's first grad is zero
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    saved = trainable_state_dict(model)
    assert saved and all("lora_" in n or n.startswith("classifier.") for n in saved)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr_lora=3e-4))}
    assert set(groups) == {"lora", "head", "head_nodecay"}  # LoRA matrices are 2-D, so they take weight decay
    assert groups["lora"]["lr"] == pytest.approx(3e-4)
