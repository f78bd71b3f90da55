"""Which parameters train, and the learning rate each group gets (the reference recipe)."""
import pytest
import torch

from contrastlab.model import LoraConfig, ModelConfig, build_classifier, find_layers, trainable_state_dict
from contrastlab.optim import OptimConfig, build_optimizer, param_groups


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
    cfg = OptimConfig(lr_top=2e-5, lr_decay=0.5, lr_head=1e-4, weight_decay=0.01)
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


def test_scheduler_warms_up_then_decays_linearly(model):
    opt, sched = build_optimizer(model, OptimConfig(warmup_ratio=0.1, lr_head=1e-4), total_steps=100)
    head = next(g for g in opt.param_groups if g["name"] == "head")
    lrs = []
    for _ in range(100):
        lrs.append(head["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(1e-4) and lrs[55] == pytest.approx(0.5e-4)


def test_too_many_trainable_layers_is_an_error_naming_the_key(tiny_deberta_dir):
    with pytest.raises(ValueError, match="model.trainable_layers = 9"):
        build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=9), num_labels=2)


def test_nonpositive_lr_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="train.lr_head"):
        OptimConfig(lr_head=0.0)


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
    groups = {g["name"] for g in param_groups(model, OptimConfig(), lora=True)}
    assert groups == {"lora", "head", "head_nodecay"}  # LoRA matrices are 2-D, so they take weight decay
