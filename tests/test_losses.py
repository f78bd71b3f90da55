"""Losses against hand-computed values, independent implementations, and their edge cases."""
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import NTXentLoss
from pytorch_metric_learning.losses import SupConLoss as PmlSupConLoss

from contrastlab.objectives.losses import (FocalCrossEntropy, FocalSupConLoss, MarginContrastiveLoss, MemoryQueue,
                                SupConLoss, make_contrastive, symmetric_kl)


def unit(*angles_deg):
    """2-d unit vectors at the given angles, [n, 2]."""
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], 1).float()


def test_supcon_matches_hand_computed_value_on_three_points():
    # anchors 0 and 1 (label 0) at 0 and 90 degrees, anchor 2 (label 1) at 180: cosines 0, -1, 0
    views = unit(0, 90, 180)[:, None]  # [3, 1, 2]
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    # anchor 0: positive 1 (cos 0), contrast {1: cos 0, 2: cos -1}; anchor 1 likewise with 2 at cos 0
    l0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1 / tau)))
    l1 = -math.log(math.exp(0) / (math.exp(0) + math.exp(0)))
    # anchor 2 has no positive: not counted
    expected = (l0 + l1) / 2
    assert SupConLoss(tau)(views, labels).item() == pytest.approx(expected, rel=1e-6)


def test_supcon_single_view_equals_pytorch_metric_learning():
    torch.manual_seed(0)
    emb = torch.randn(12, 8)
    labels = torch.tensor([0, 1, 2] * 4)
    ours = SupConLoss(temperature=0.1)(emb[:, None], labels)
    ref = PmlSupConLoss(temperature=0.1)(emb, labels)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_supcon_anchor_without_positive_is_zero_not_nan():
    views = torch.randn(3, 1, 4, requires_grad=True)
    loss = SupConLoss(0.07)(views, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


def test_supcon_batch_of_one_class_is_finite_and_equals_log_n_minus_one_for_identical_views():
    views = torch.ones(5, 1, 3)
    loss = SupConLoss(0.07)(views, torch.zeros(5, dtype=torch.long))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-5)


def test_supcon_multi_view_counts_other_views_of_the_same_sample_as_positives():
    # two samples, two views each, different labels; each anchor's only positive is its twin view
    views = torch.stack([unit(0, 10), unit(180, 190)])  # [2, 2, 2]
    tau = 1.0
    c = math.cos(math.radians(10))
    c_neg = [math.cos(math.radians(180)), math.cos(math.radians(170))]
    anchor0 = -math.log(math.exp(c) / (math.exp(c) + sum(math.exp(x) for x in c_neg)))
    loss = SupConLoss(tau)(views, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(anchor0, rel=1e-5)  # all four anchors are symmetric


def test_padding_views_are_ignored_by_the_loss():
    torch.manual_seed(2)
    views = torch.randn(4, 3, 6)
    labels = torch.tensor([0, 1, 0, 1])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    garbage = views.clone()
    garbage[~mask] = 1e4
    a = SupConLoss(0.1)(views, labels, mask)
    b = SupConLoss(0.1)(garbage, labels, mask)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_all_views_padding_gives_zero_loss_with_a_gradient_path():
    views = torch.randn(2, 3, 4, requires_grad=True)
    loss = SupConLoss()(views, torch.tensor([0, 0]), torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(views.grad, torch.zeros_like(views))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_views_do_not_overflow(dtype):
    torch.manual_seed(3)
    views = (torch.randn(8, 2, 64) * 300).to(dtype)  # |v|^2 ~ 6e6 overflows float16 if computed in it
    labels = torch.tensor([0, 1] * 4)
    for loss_fn in (SupConLoss(0.05, normalize=False), SupConLoss(0.05), FocalSupConLoss(0.05)):
        loss = loss_fn(views, labels)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_unnormalized_supcon_uses_raw_dot_products():
    views = torch.tensor([[[2.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    labels = torch.tensor([0, 0, 1])
    # anchor 0: pos dot 2, neg dot 0; anchor 1: pos 2, neg 0
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert SupConLoss(1.0, normalize=False)(views, labels).item() == pytest.approx(expected, rel=1e-6)
    assert SupConLoss(1.0, normalize=True)(views, labels).item() != pytest.approx(expected, rel=1e-3)


def test_focal_supcon_with_gamma_zero_equals_supcon_and_down_weights_easy_pairs():
    torch.manual_seed(4)
    views, labels = torch.randn(6, 2, 5), torch.tensor([0, 1, 2] * 2)
    sup = SupConLoss(0.2)(views, labels)
    assert FocalSupConLoss(0.2, gamma=0.0)(views, labels).item() == pytest.approx(sup.item(), rel=1e-6)
    assert FocalSupConLoss(0.2, gamma=2.0)(views, labels).item() < sup.item()


def test_focal_supcon_matches_hand_value():
    views = unit(0, 90, 180)[:, None]
    labels = torch.tensor([0, 0, 1])
    p0 = math.exp(0) / (math.exp(0) + math.exp(-1))  # tau 1
    p1 = 0.5
    expected = (-(1 - p0) ** 2 * math.log(p0) - (1 - p1) ** 2 * math.log(p1)) / 2
    assert FocalSupConLoss(1.0, gamma=2.0)(views, labels).item() == pytest.approx(expected, rel=1e-6)


def test_margin_contrastive_matches_hand_value():
    # anchor 0: pos 1 (cos 0.5), neg 2 (cos 0) -> relu(0.2 + 0 - 0.5) = 0
    # anchor 1: pos 0 (cos 0.5), neg 2 (cos cos(30)) -> relu(0.2 + 0.866 - 0.5)
    # anchor 2: no positive -> not counted
    views = unit(0, 60, 90)[:, None]
    labels = torch.tensor([0, 0, 1])
    expected = (0.0 + max(0.0, 0.2 + math.cos(math.radians(30)) - 0.5)) / 2
    assert MarginContrastiveLoss(0.2)(views, labels).item() == pytest.approx(expected, abs=1e-6)


def test_simcse_as_supcon_over_sample_identity_equals_nt_xent_with_in_batch_negatives():
    """SimCSE is SupConLoss with labels = arange(B): each sample's two views are each other's only
    positive (pytorch-metric-learning's NT-Xent over the 2B views is the reference)."""
    torch.manual_seed(5)
    views = torch.randn(4, 2, 8)
    ours = SupConLoss(0.05)(views, torch.arange(4))
    ref = NTXentLoss(temperature=0.05)(views.reshape(8, 8), torch.arange(4).repeat_interleave(2))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    twins = torch.randn(4, 1, 8).expand(4, 2, 8)
    assert SupConLoss(0.05)(twins, torch.arange(4)).item() < ours.item()


def test_no_anchor_with_a_positive_gives_a_float32_zero_even_for_half_precision_views():
    views = torch.randn(3, 1, 4, dtype=torch.bfloat16, requires_grad=True)
    loss = SupConLoss(0.1)(views, torch.tensor([0, 1, 2]))
    assert loss.dtype == torch.float32 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(views.grad, torch.zeros_like(views))


def test_symmetric_kl_equals_torch_kl_div_and_hand_value():
    l1, l2 = torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    p1, p2 = l1.softmax(-1), l2.softmax(-1)
    kl = lambda p, q: (p * (p / q).log()).sum(-1)  # noqa: E731
    hand = ((kl(p1, p2) + kl(p2, p1)) / 2).mean()
    ref = (F.kl_div(p2.log(), p1, reduction="batchmean") + F.kl_div(p1.log(), p2, reduction="batchmean")) / 2
    assert symmetric_kl(l1, l2).item() == pytest.approx(hand.item(), rel=1e-6)
    assert symmetric_kl(l1, l2).item() == pytest.approx(ref.item(), rel=1e-6)
    assert symmetric_kl(l1, l2, "sum").item() == pytest.approx(2 * hand.item(), rel=1e-6)
    assert symmetric_kl(l1, l1).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="KL reduction"):
        symmetric_kl(l1, l2, "none")
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        symmetric_kl(l1, l2[:, :1])


def test_symmetric_kl_mean_is_the_mean_over_classes_too_not_batchmean():
    """'mean' averages over all B x C elements: batchmean / C (hand values, C = 3)."""
    l1 = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    l2 = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    p1, p2 = l1.double().softmax(-1), l2.double().softmax(-1)
    elem = (p1 * (p1 / p2).log() + p2 * (p2 / p1).log()) / 2  # [2, 3]
    assert symmetric_kl(l1, l2, "mean").item() == pytest.approx(elem.mean().item(), rel=1e-6)
    assert symmetric_kl(l1, l2, "batchmean").item() == pytest.approx(elem.sum().item() / 2, rel=1e-6)
    assert symmetric_kl(l1, l2, "mean").item() == pytest.approx(symmetric_kl(l1, l2, "batchmean").item() / 3, rel=1e-6)
    ref = (F.kl_div(p2.log(), p1, reduction="sum") + F.kl_div(p1.log(), p2, reduction="sum")) / 2 / 6
    assert symmetric_kl(l1, l2, "mean").item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("loss_fn", [SupConLoss(0.05), FocalSupConLoss(0.05), MarginContrastiveLoss(0.2)],
                         ids=["supcon", "focal", "margin"])
def test_contrastive_math_stays_float32_under_bf16_autocast(loss_fn):
    """Under autocast the similarity, softmax and log are still float32: the loss of float32 views
    (with a memory) equals its value without autocast; a bf16 matmul would be off by ~1e-2."""
    torch.manual_seed(8)
    views, labels = torch.randn(8, 2, 32), torch.tensor([0, 1, 2, 3] * 2)
    memory = (torch.randn(6, 32), torch.tensor([0, 1, 2, 3, 0, 1]))
    plain = loss_fn(views, labels, memory=memory)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = loss_fn(views, labels, memory=memory)
        kl = symmetric_kl(views[:, 0, :4] * 3, views[:, 1, :4] * 3, "mean")
    assert cast.dtype == torch.float32 and kl.dtype == torch.float32
    assert cast.item() == pytest.approx(plain.item(), rel=1e-6)
    assert kl.item() == pytest.approx(symmetric_kl(views[:, 0, :4] * 3, views[:, 1, :4] * 3, "mean").item(), rel=1e-6)


def test_focal_ce_with_gamma_zero_is_ce_and_hand_value():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1])
    assert FocalCrossEntropy(0.0)(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    p0 = 1 / (1 + math.exp(-2))
    expected = (-(1 - p0) ** 2 * math.log(p0) - 0.25 * math.log(0.5)) / 2
    assert FocalCrossEntropy(2.0)(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_memory_adds_detached_contrasts_but_no_anchors():
    torch.manual_seed(6)
    views = torch.randn(4, 1, 8, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])  # no positive inside the micro-batch
    queue = MemoryQueue(size=2)
    assert queue.get() is None
    assert SupConLoss(0.1)(views, labels, memory=queue.get()).item() == 0.0
    queue.push(torch.randn(4, 1, 8), torch.tensor([0, 1, 2, 3]))
    loss = SupConLoss(0.1)(views, labels, memory=queue.get())
    loss.backward()
    assert loss.item() > 0 and views.grad.abs().sum() > 0
    # the queue keeps the last `size` micro-batches only
    for _ in range(3):
        queue.push(torch.randn(2, 3, 8), torch.tensor([0, 1]))
    feats, labs = queue.get()
    assert feats.shape == (12, 8) and labs.tolist() == [0, 0, 0, 1, 1, 1] * 2
    assert not feats.requires_grad


def test_memory_with_the_same_batch_equals_a_batch_twice_as_large_for_anchors_of_the_first_half():
    torch.manual_seed(7)
    a, b = torch.randn(4, 1, 8), torch.randn(4, 1, 8)
    la, lb = torch.tensor([0, 1, 0, 1]), torch.tensor([1, 0, 1, 0])
    with_memory = SupConLoss(0.1)(a, la, memory=(b[:, 0], lb))
    # the big batch averages over all 8 anchors; recompute its first-half anchors by hand
    loss_fn = SupConLoss(0.1)
    feats = F.normalize(torch.cat([a, b])[:, 0], dim=-1)
    labs = torch.cat([la, lb])
    sim = feats @ feats.T / 0.1
    sim.fill_diagonal_(float("-inf"))
    logp = sim.log_softmax(1)
    pos = (labs[:, None] == labs[None]) & ~torch.eye(8, dtype=torch.bool)
    per = -(logp.masked_fill(~pos, 0).sum(1) / pos.sum(1))
    assert with_memory.item() == pytest.approx(per[:4].mean().item(), rel=1e-5)
    assert loss_fn(a, la).item() != pytest.approx(with_memory.item(), rel=1e-3)


def test_bad_shapes_and_names_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\[batch, n_views, dim\]"):
        SupConLoss()(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be"):
        SupConLoss()(torch.randn(4, 1, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="contrastive loss must be one of"):
        make_contrastive("triplet", 0.1)
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
