"""The [CLS] attention row captured during the fast forward pass equals the eager attention map."""
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from contrastlab.objectives.attention import cls_attention
from contrastlab.plan.config import LoraConfig, ModelConfig
from contrastlab.plan.hfconfig import model_location
from contrastlab.training.model import build_classifier

TEXTS = ["a short one", "an utterly charming, funny and surprisingly moving film about growing up",
         "dull."]


def _pair(path):
    """(fast model as contrastlab loads it, eager reference with the same weights), eval mode."""
    try:
        fast = AutoModel.from_pretrained(path, attn_implementation="sdpa")
    except ValueError:  # DeBERTa-v2 has no SDPA: its own kernel
        fast = AutoModel.from_pretrained(path)
    eager = AutoModel.from_pretrained(path, attn_implementation="eager")
    return fast.eval(), eager.eval()


@pytest.fixture(scope="module", params=["minilm", "tiny_deberta"])
def models(request, tiny_deberta_dir):
    path = model_location("embedded")[1] if request.param == "minilm" else str(tiny_deberta_dir)
    tok = AutoTokenizer.from_pretrained(path)
    return (*_pair(path), tok(TEXTS, padding=True, return_tensors="pt"))


def test_cls_row_equals_eager_output_attentions_at_every_layer(models):
    fast, eager, batch = models
    n = fast.config.num_hidden_layers
    layers = [0, n // 2, -1]
    with torch.no_grad(), cls_attention(fast, layers) as rows:
        fast(**batch)
        ref = eager(**batch, output_attentions=True).attentions
    for layer in layers:
        expected = ref[layer][:, :, 0, :].mean(1)  # layer l -> attentions[l]
        assert rows[layer].shape == expected.shape
        assert (rows[layer] - expected).abs().max().item() < 1e-6, f"layer {layer}"
    assert not torch.allclose(rows[0], rows[-1])  # distinct layers, not one row copied


def test_rows_are_distributions_with_zero_on_padding(models):
    fast, _, batch = models
    with torch.no_grad(), cls_attention(fast, [-1]) as rows:
        fast(**batch)
    row, mask = rows[-1], batch["attention_mask"].bool()
    assert torch.allclose(row.sum(1), torch.ones(len(TEXTS)), atol=1e-5)
    assert (row[~mask] == 0).all() and (row[mask] > 0).all()


def test_forward_output_unchanged_and_hooks_removed_after_the_block(models):
    fast, _, batch = models
    with torch.no_grad():
        before = fast(**batch).last_hidden_state
        with cls_attention(fast, [-1]):
            during = fast(**batch)
        after = fast(**batch).last_hidden_state
    assert torch.equal(before, during.last_hidden_state) and torch.equal(before, after)
    assert during.attentions is None  # no attention map is returned (nor computed for BERT)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in fast.modules())


def test_bert_keeps_the_sdpa_kernel_in_every_layer(monkeypatch):
    fast, _ = _pair(model_location("embedded")[1])
    tok = AutoTokenizer.from_pretrained(model_location("embedded")[1])
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad(), cls_attention(fast, [0, -1]) as rows:
        fast(**tok(TEXTS, padding=True, return_tensors="pt"))
    assert len(calls) == fast.config.num_hidden_layers and set(rows) == {0, -1}


def test_works_through_a_lora_wrapped_classifier_in_train_mode(tiny_deberta_dir):
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), lora=LoraConfig(r=4)), num_labels=2)
    tok = AutoTokenizer.from_pretrained(tiny_deberta_dir)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    model.train()
    with cls_attention(model, [-1]) as rows:
        model.encode(batch["input_ids"], batch["attention_mask"])
    assert rows[-1].shape == batch["input_ids"].shape and not rows[-1].requires_grad
    assert torch.allclose(rows[-1].sum(1), torch.ones(len(TEXTS)), atol=1e-5)


def test_out_of_range_layer_is_an_error_naming_the_range(tiny_deberta_dir):
    model = AutoModel.from_pretrained(str(tiny_deberta_dir))
    with pytest.raises(ValueError, match="out of range"):
        with cls_attention(model, [4]):
            pass
