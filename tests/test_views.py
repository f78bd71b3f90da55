"""View builders: one shape [B, V, D], the top-k rule, differentiable cluster means."""
import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from contrastlab.plan.config import ModelConfig
from contrastlab.training.model import build_classifier
from contrastlab.objectives.views import (cluster_views, dropout_views, kmeans, layer_cls_views, layer_set_views,
                               token_mask, top_tokens, topk_token_views)


def test_token_mask_excludes_cls_sep_and_padding_like_the_tokenizer(tiny_deberta_dir):
    tok = AutoTokenizer.from_pretrained(tiny_deberta_dir)
    enc = tok(["a fine film", "bad", "not good at all, really"], padding=True, return_tensors="pt",
              return_special_tokens_mask=True)
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    derived = token_mask(batch)
    from_tokenizer = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()
    assert torch.equal(derived, from_tokenizer)
    assert torch.equal(token_mask({**batch, "special_tokens_mask": enc["special_tokens_mask"]}), from_tokenizer)


def test_token_mask_rejects_left_padding():
    with pytest.raises(ValueError, match="right padding"):
        token_mask({"attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])})


def test_layer_cls_views_follow_the_layer_convention():
    # hidden_states[i] filled with i: layer l must read hidden_states[l + 1]
    hs = tuple(torch.full((2, 3, 4), float(i)) for i in range(5))  # 4 layers + embeddings
    views = layer_cls_views(hs, [0, -1, 2])
    assert views.shape == (2, 3, 4)
    assert views[0, :, 0].tolist() == [1.0, 4.0, 3.0]


def test_topk_picks_highest_real_tokens_first_and_pads_when_k_exceeds_them():
    hidden = torch.arange(2 * 5 * 1, dtype=torch.float).view(2, 5, 1).requires_grad_()
    scores = torch.tensor([[0.5, 0.1, 0.3, 0.2, 0.9], [0.9, 0.4, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)  # [CLS]/[SEP]/pad excluded
    views, valid = topk_token_views(hidden, scores, mask, k=4)
    assert views.shape == (2, 4, 1) and valid.shape == (2, 4)
    assert views[0, :3, 0].tolist() == [2.0, 3.0, 1.0]  # tokens 2, 3, 1 by score; never 0 or 4
    assert valid.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert views[1, 0, 0].item() == 6.0 and (views[~valid] == 0).all()
    views.sum().backward()
    assert hidden.grad.view(2, 5).tolist() == [[0, 1, 1, 1, 0], [0, 1, 0, 0, 0]]


def test_topk_with_k_larger_than_the_sequence_length_does_not_crash():
    views, valid = topk_token_views(torch.randn(3, 4, 8), torch.rand(3, 4), torch.ones(3, 4, dtype=torch.bool), 30)
    assert views.shape == (3, 30, 8) and valid.sum().item() == 12


def test_kmeans_separates_two_blobs_deterministically():
    torch.manual_seed(0)
    a, b = torch.randn(5, 3) * 0.1, torch.randn(5, 3) * 0.1 + 10
    x = torch.stack([torch.cat([a, b]), torch.cat([b, a])])  # [2, 10, 3]
    mask = torch.ones(2, 10, dtype=torch.bool)
    assign = kmeans(x, mask, n_clusters=2)
    for s in range(2):
        assert len(set(assign[s, :5].tolist())) == 1 and len(set(assign[s, 5:].tolist())) == 1
        assert assign[s, 0] != assign[s, 5]
    assert torch.equal(assign, kmeans(x, mask, n_clusters=2))


def test_cluster_means_carry_gradient_and_equal_the_hand_means():
    tokens = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 2.0], [5.0, 5.0]]], requires_grad=True)
    mask = torch.tensor([[True, True, True, True, False]])
    means, valid = cluster_views(tokens, mask, n_clusters=2)
    got = sorted(map(tuple, means[0].tolist()))
    assert got == [(0.0, 0.5), (10.0, 1.0)] and valid.all()
    means.sum().backward()
    assert tokens.grad[0, :4].abs().sum() > 0 and (tokens.grad[0, 4] == 0).all()  # masked token: none


def test_more_clusters_than_real_tokens_leaves_empty_clusters_masked():
    tokens = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    means, valid = cluster_views(tokens, mask, n_clusters=4)
    assert means.shape == (2, 4, 4)
    assert valid.sum(1).tolist() == [2, 4] and torch.isfinite(means).all()


def test_dropout_views_differ_in_train_mode_only():
    drop = nn.Dropout(0.5)
    cls = torch.ones(4, 16)
    two = dropout_views(cls, drop, n=2)
    assert two.shape == (4, 2, 16) and not torch.equal(two[:, 0], two[:, 1])
    drop.eval()
    assert torch.equal(dropout_views(cls, drop)[:, 0], cls)


def test_layer_set_views_give_one_group_per_layer_at_both_levels():
    hs = tuple(torch.randn(2, 5, 4) for _ in range(5))
    sent = layer_set_views(hs, [1, 3], "sentence", dropout=nn.Dropout(0.1))
    assert [g[0].shape for g in sent] == [(2, 2, 4)] * 2 and torch.equal(sent[0][0][:, 0], hs[2][:, 0])
    rows = {1: torch.rand(2, 5), 3: torch.rand(2, 5)}
    tok = layer_set_views(hs, [1, 3], "token", rows=rows, mask=torch.ones(2, 5, dtype=torch.bool), k=3)
    assert [g[0].shape for g in tok] == [(2, 3, 4)] * 2 and all(g[1].all() for g in tok)
    with pytest.raises(ValueError, match="level"):
        layer_set_views(hs, [1], "word")


@pytest.mark.parametrize("layer", [-1, 1])
def test_top_tokens_are_the_hidden_states_its_own_layer_attends_to_most(tiny_deberta_dir, layer):
    """top_tokens against the eager attention map: layer l's views are hidden_states[l + 1] at the
    k real tokens with the highest mean-over-heads [CLS] attention of attentions[l], highest first."""
    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir)), num_labels=2).eval()
    tok = AutoTokenizer.from_pretrained(tiny_deberta_dir)
    enc = tok(["a fine film", "not good at all, really, not even the music", "dull and long"],
              padding=True, return_tensors="pt", return_special_tokens_mask=True)
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    k = 5
    with torch.no_grad():
        cls, views, valid = top_tokens(model, batch, layer, k)
        ref = model.encoder(**batch, output_hidden_states=True, output_attentions=True)
    real = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()
    row = ref.attentions[layer][:, :, 0, :].mean(1)
    hidden = ref.hidden_states[layer % 4 + 1]
    torch.testing.assert_close(cls, ref.last_hidden_state[:, 0])
    for i in range(3):
        picks = [t for t in row[i].argsort(descending=True).tolist() if real[i, t]][:k]
        assert valid[i].tolist() == [True] * len(picks) + [False] * (k - len(picks))
        torch.testing.assert_close(views[i, :len(picks)], hidden[i, picks], rtol=1e-5, atol=1e-6)
    assert valid[0].sum() < k  # the short text has fewer real tokens than k: padding views
