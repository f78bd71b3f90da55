"""Paired bootstrap, McNemar, Holm, detectable differences: real differences found, null ones not,
hand-checked values."""
import math

import numpy as np
import pytest

from contrastlab.stats import detectable, format_mean_std, holm, mcnemar, paired_bootstrap, seeds_to_detect


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


def test_bootstrap_pairs_examples_so_a_small_consistent_gain_is_detected_where_unpaired_misses_it():
    """b = a with 20 of 1000 errors fixed and none broken. Paired on the examples, the difference
    only varies with how many of the 20 fixed examples a draw picks: se = sqrt((p_d - d^2) / n)
    with p_d = 0.02 discordant and d = 0.02, and the interval excludes 0. Resampling the two arms
    independently (an unpaired bootstrap) adds both arms' binomial noise and covers 0."""
    n = 1000
    rng = np.random.default_rng(4)
    a = np.zeros(n, bool)
    a[rng.permutation(n)[:700]] = True
    b = a.copy()
    b[np.flatnonzero(~a)[:20]] = True
    r = paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert r["diff"] == pytest.approx(0.02)
    assert r["lo"] > 0 and r["p"] < 0.01
    p_d, d = 0.02, 0.02
    assert r["se"] == pytest.approx(math.sqrt((p_d - d ** 2) / n), rel=0.1)

    boot = np.random.default_rng(0)
    unpaired = np.array([b[boot.integers(0, n, n)].mean() - a[boot.integers(0, n, n)].mean() for _ in range(2000)])
    lo, hi = np.quantile(unpaired, [0.025, 0.975])
    assert lo < 0 < hi  # the same data, unpaired: no difference found
    assert unpaired.std() > 3 * r["se"]


def test_bootstrap_with_paired_seeds_draws_the_same_seeds_for_both_arms():
    """Seed k of b is seed k of a plus the same 20 fixed examples: a seed-paired draw sees a
    difference of 0.02 whatever seeds it picks; drawing each arm's seeds independently mixes in the
    (large) spread between seeds and widens the interval."""
    rng = np.random.default_rng(5)
    a = np.zeros((3, 1000), bool)
    for s, acc in enumerate([0.6, 0.7, 0.8]):
        a[s, rng.permutation(1000)[:int(acc * 1000)]] = True
    b = a.copy()
    for s in range(3):
        b[s, np.flatnonzero(~a[s])[:20]] = True
    paired = paired_bootstrap(a, b, n_boot=2000, seed=0)
    unpaired = paired_bootstrap(a, b, n_boot=2000, seed=0, paired_seeds=False)
    assert paired["diff"] == unpaired["diff"] == pytest.approx(0.02)
    assert paired["lo"] > 0
    assert unpaired["lo"] < 0 < unpaired["hi"]
    assert unpaired["se"] > 5 * paired["se"]


def test_holm_matches_hand_worked_adjustment_and_leaves_nan_alone():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06
    p = [0.01, np.nan, 0.04, 0.03, 0.005, np.nan]
    out = holm(p)
    assert np.isnan(out[1]) and np.isnan(out[5])
    assert out[[0, 2, 3, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.all(np.isnan(holm([np.nan, np.nan])))


def test_holm_is_monotone_in_p_capped_at_one_and_never_below_p():
    assert holm([0.4, 0.7, 0.9]) == pytest.approx([1.0, 1.0, 1.0])  # 1.2, 1.4, 0.9 -> capped
    assert holm([0.2]) == pytest.approx([0.2])  # one comparison: unchanged
    rng = np.random.default_rng(6)
    p = rng.random(40) ** 3
    out = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(out[order]) >= 0)
    assert np.all(out >= p) and np.all(out <= 1.0)
    assert out[order[0]] == pytest.approx(min(1.0, 40 * p[order[0]]))


def test_detectable_difference_is_2_8_standard_errors_and_seeds_scale_it_down():
    assert detectable(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)
    # mdd 0.028 against a diff of 0.01: (2.8)^2 = 7.84 -> 8 seeds
    assert seeds_to_detect(0.01, 0.01) == 8
    assert seeds_to_detect(-0.01, 0.01) == 8
    assert seeds_to_detect(0.05, 0.01) == 1
    assert math.isinf(seeds_to_detect(0.0, 0.01))


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


def test_mean_std_formatting():
    assert format_mean_std(0.8123, 0.0041, 3) == "0.812 ± 0.004"
    assert format_mean_std(0.8123, 0.0, 3, n=1) == "0.812"
    assert format_mean_std(0.8123, float("nan"), 2) == "0.81"
