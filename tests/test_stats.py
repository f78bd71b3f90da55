"""Paired bootstrap and McNemar: real differences found, null ones not, hand-checked values."""
import numpy as np
import pytest

from contrastlab.stats import format_mean_std, mcnemar, mean_std, paired_bootstrap


def test_bootstrap_detects_a_real_ten_point_difference():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.7
    b = a.copy()
    b[np.flatnonzero(~a)[:200]] = True  # b also gets 200 more examples (10%) right
    r = paired_bootstrap(a[None], b[None], n_boot=2000, seed=0)
    assert r["diff"] == pytest.approx(0.10)
    assert r["lo"] > 0 and r["p"] < 0.01


def test_bootstrap_does_not_flag_a_null_difference():
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 2000)) < 0.8, rng.random((3, 2000)) < 0.8
    r = paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert r["lo"] < 0 < r["hi"] and r["p"] > 0.05


def test_bootstrap_diff_equals_plain_accuracy_difference_with_unequal_seeds():
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 500)) < 0.6, rng.random((4, 500)) < 0.7
    r = paired_bootstrap(a, b, n_boot=500, seed=0)  # seeds resampled independently per arm
    assert r["diff"] == pytest.approx(b.mean() - a.mean())
    assert r["lo"] <= r["diff"] <= r["hi"]


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 300)) < 0.6, rng.random((2, 300)) < 0.65
    assert paired_bootstrap(a, b, n_boot=300, seed=5) == paired_bootstrap(a, b, n_boot=300, seed=5)


def test_mcnemar_chi_square_matches_hand_computation():
    # 30 discordant pairs: b01 = 20 (a wrong, b right), b10 = 10 -> (|20 - 10| - 1)^2 / 30 = 2.7
    a = np.array([0] * 20 + [1] * 10 + [1] * 50 + [0] * 20, dtype=bool)
    b = np.array([1] * 20 + [0] * 10 + [1] * 50 + [0] * 20, dtype=bool)
    r = mcnemar(a, b)
    assert (r["b01"], r["b10"]) == (20, 10)
    assert r["statistic"] == pytest.approx(2.7)
    assert r["p"] == pytest.approx(0.100348, abs=1e-5)  # chi2(1).sf(2.7)


def test_mcnemar_exact_for_few_discordant_pairs():
    # b01 = 5, b10 = 0: two-sided exact p = 2 * 0.5^5 = 0.0625
    a = np.array([0] * 5 + [1] * 20, dtype=bool)
    b = np.ones(25, dtype=bool)
    r = mcnemar(a, b)
    assert r["method"] == "exact" and r["p"] == pytest.approx(0.0625)


def test_mean_std_and_formatting():
    assert mean_std([0.81, 0.83]) == pytest.approx((0.82, np.std([0.81, 0.83], ddof=1)))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert format_mean_std(0.8123, 0.0041, 3) == "0.812 ± 0.004"
    assert format_mean_std(0.8123, 0.0, 3, n=1) == "0.812"
