"""contrastlab.metrics: test-set metrics against scikit-learn, and the collapse diagnosis."""
import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from contrastlab.metrics import _ranks, binary_auc, classification_metrics, collapse, macro_f1


def probs_with_ties(n, n_classes, seed, palette=6):
    """[n, C] probability rows drawn from a small palette: every column has many tied scores."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.ones(n_classes), size=palette)
    return rows[rng.integers(0, palette, n)]


def sklearn_metrics(labels, probs):
    preds = probs.argmax(1)
    auc = (roc_auc_score(labels, probs[:, 1]) if probs.shape[1] == 2 else
           roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="macro"),
            "roc_auc": auc}


# ---- classification_metrics ------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_equal_scikit_learn(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    probs = probs_with_ties(200, 2, seed) if ties else rng.dirichlet([1, 1], 200)
    if not ties:  # informative scores, so that the AUC is not about 0.5 by chance alone
        probs = np.where(labels[:, None] == 1, probs[:, ::-1] ** 2, probs)
        probs = probs / probs.sum(1, keepdims=True)
    ours, ref = classification_metrics(labels, probs), sklearn_metrics(labels, probs)
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k
    if ties:
        assert len(np.unique(probs[:, 1])) <= 6  # the scores really are tied


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_three_class_metrics_equal_scikit_learn_one_vs_rest_macro(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 300)
    probs = probs_with_ties(300, 3, seed) if ties else rng.dirichlet([1, 1, 1], 300)
    probs[np.arange(300), labels] += 0.3  # informative
    probs = probs / probs.sum(1, keepdims=True)
    ours, ref = classification_metrics(labels, probs), sklearn_metrics(labels, probs)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def test_macro_f1_counts_a_class_never_predicted_and_one_never_true():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    preds = np.array([0, 0, 1, 1, 1, 1, 1, 1])  # class 2 is never predicted: its F1 is 0
    assert macro_f1(labels, preds, 3) == pytest.approx(f1_score(labels, preds, average="macro"))
    assert macro_f1(labels, preds, 3) == pytest.approx((0.8 + 0.5 + 0) / 3)
    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # class 2 predicted, never true
    assert macro_f1(labels, preds, 3) == pytest.approx(f1_score(labels, preds, average="macro"))
    assert macro_f1(labels, preds, 4) == macro_f1(labels, preds, 3)  # an absent class is not averaged in


def test_binary_auc_counts_ties_as_half():
    positive = np.array([1, 0, 1, 0])
    assert binary_auc(positive, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert binary_auc(positive, np.array([0.9, 0.5, 0.5, 0.1])) == pytest.approx(0.875)  # 3.5 of 4 pairs
    assert binary_auc(positive, np.array([0.9, 0.5, 0.5, 0.1])) == roc_auc_score(positive, [0.9, 0.5, 0.5, 0.1])
    assert binary_auc(positive, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0


def test_ranks_average_ties_like_scipy():
    x = np.random.default_rng(0).integers(0, 5, 50).astype(float)
    assert np.array_equal(_ranks(x), rankdata(x))
    assert np.array_equal(_ranks(np.array([3.0])), [1.0])


@pytest.mark.parametrize("n_classes, present", [(2, [1]), (3, [0, 2])])
def test_roc_auc_is_none_when_the_test_set_lacks_a_class(n_classes, present):
    rng = np.random.default_rng(1)
    labels = rng.choice(present, 40)
    probs = rng.dirichlet(np.ones(n_classes), 40)
    m = classification_metrics(labels, probs)
    assert m["roc_auc"] is None
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))


# ---- collapse -------------------------------------------------------------------------------

NAMES = ["neg", "pos"]
FALLING = 0.7 * np.exp(-np.linspace(0, 3, 100)) + 0.05  # a CE that learns


def test_collapse_is_none_for_a_healthy_run():
    preds = np.array([0, 1] * 20)
    assert collapse(preds, FALLING, {"ce": 0.8, "supcon": 0.2}, "ce", NAMES) is None
    assert collapse(preds, FALLING, {"ce": 1.0}, "ce", NAMES) is None


def test_collapse_flags_a_single_predicted_class():
    out = collapse(np.ones(40, dtype=int), FALLING, {"ce": 0.3, "supcon": 0.7}, "ce", NAMES)
    assert out["one_class"] is True and out["ce_stuck"] is False
    assert out["reason"].startswith("predicts only 'pos'; ")
    assert "never fell" not in out["reason"]


def test_collapse_flags_a_ce_that_never_falls_below_its_start():
    rng = np.random.default_rng(0)
    ce = 0.693 + np.abs(rng.normal(0, 0.01, 100))  # noisy, never below where it started
    out = collapse(np.array([0, 1] * 20), ce, {"ce": 0.9, "supcon": 0.1}, "ce", NAMES)
    assert out["ce_stuck"] is True and out["one_class"] is False
    start = np.mean(ce[:10])  # the start is the mean of the first tenth of the run
    assert f"ce never fell below its start ({start:.3f})" in out["reason"]
    assert "predicts only" not in out["reason"]


def test_collapse_ce_stuck_compares_the_smoothed_curve_with_one_percent_below_the_start():
    preds = np.array([0, 1] * 20)
    dips = np.full(100, 1.0)
    dips[50:60] = 0.995  # a tenth of the run 0.5% lower: within 1% of the start, still stuck
    assert collapse(preds, dips, {"ce": 1.0}, "ce", NAMES)["ce_stuck"] is True
    dips[50:60] = 0.98  # 2% lower over a tenth of the run: it learned something
    assert collapse(preds, dips, {"ce": 1.0}, "ce", NAMES) is None
    spike = np.full(100, 1.0)
    spike[50] = 0.5  # one low step, smoothed over 10 steps: 0.95, below 0.99
    assert collapse(preds, spike, {"ce": 1.0}, "ce", NAMES) is None
    spike[50] = 0.95  # smoothed 0.995: not enough
    assert collapse(preds, spike, {"ce": 1.0}, "ce", NAMES)["ce_stuck"] is True
    assert collapse(preds, np.array([0.7]), {"ce": 1.0}, "ce", NAMES) is None  # one step says nothing


def test_collapse_names_the_dominant_term_and_its_share():
    one = np.zeros(40, dtype=int)
    out = collapse(one, FALLING, {"ce": 0.25, "supcon": 0.75}, "ce", NAMES)
    assert out["dominant_term"] == "supcon" and out["dominant_share"] == 0.75
    assert out["reason"] == "predicts only 'neg'; supcon was 75% of its loss"
    out = collapse(one, FALLING, {"focal_ce": 0.6, "margin": 0.4}, "focal_ce", NAMES)
    assert out["dominant_term"] == "focal_ce" and out["dominant_share"] == 0.6
    assert out["reason"].endswith("; focal_ce was 60% of its loss")


def test_collapse_of_a_cross_entropy_only_loss_blames_the_recipe():
    both = np.full(100, 0.7)
    out = collapse(np.zeros(40, dtype=int), both, {"ce": 1.0}, "ce", NAMES)
    assert out["one_class"] is True and out["ce_stuck"] is True
    assert out["dominant_term"] == "ce" and out["dominant_share"] == 1.0
    assert out["reason"] == ("predicts only 'neg'; ce never fell below its start (0.700); "
                             "its loss is the cross-entropy alone (the recipe failed, not an auxiliary term)")
    assert collapse(np.zeros(40, dtype=int), both, {}, "ce", NAMES)["dominant_share"] == 1.0
