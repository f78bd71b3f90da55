"""The variance model's test, McNemar, Holm, detectable differences: hand-checked values (the
calibration against simulated truth is in test_calibration.py)."""
import math

import numpy as np
import pytest

from contrastlab.analysis.stats import (detectable, format_mean_std, holm, holm_levels, mcnemar, paired_difference, pool_seed_var,
                               seeds_to_detect)


def test_one_seed_difference_has_the_paired_example_standard_error():
    """b = a with 20 of 1000 errors fixed and none broken: paired on the examples, se =
    sqrt((p_d − d²)/(n − 1)) with p_d = 0.02 discordant and d = 0.02; t on n − 1 df."""
    n = 1000
    rng = np.random.default_rng(4)
    a = np.zeros(n, bool)
    a[rng.permutation(n)[:700]] = True
    b = a.copy()
    b[np.flatnonzero(~a)[:20]] = True
    r = paired_difference(a, b)
    assert r["diff"] == pytest.approx(0.02) and r["df"] == n - 1
    assert r["se"] == pytest.approx(math.sqrt((0.02 - 0.02 ** 2) / (n - 1)), rel=1e-9)
    assert r["lo"] > 0 and r["p"] < 0.01 and r["seed_var_known"] is False


def test_interval_and_p_value_come_from_one_statistic_and_never_disagree():
    """Issue 18: N = 60, 4 fixed and 0 broken had an interval excluding 0 with p = 0.058. Now the
    interval excludes 0 exactly when p < 0.05, over many small random cases."""
    rng = np.random.default_rng(7)
    a = np.zeros(60, bool)
    b = a.copy()
    b[:4] = True
    r = paired_difference(a, b)
    assert (r["lo"] > 0) == (r["p"] < 0.05)
    for _ in range(300):
        s, n = rng.integers(1, 4), rng.integers(20, 80)
        x, y = rng.random((s, n)) < 0.7, rng.random((s, n)) < rng.uniform(0.6, 0.9)
        r = paired_difference(x, y)
        assert (r["lo"] > 0 or r["hi"] < 0) == (r["p"] < 0.05 - 1e-12) or abs(r["p"] - 0.05) < 1e-9


def test_paired_seeds_with_a_constant_per_seed_gain_detect_it_despite_a_large_seed_spread():
    """Seed k of b is seed k of a plus the same 20 fixed examples: seed-paired, Δ is 0.02 in
    every seed; treated as unpaired the (large) spread between seeds hides it."""
    rng = np.random.default_rng(5)
    a = np.zeros((3, 1000), bool)
    for s, acc in enumerate([0.6, 0.7, 0.8]):
        a[s, rng.permutation(1000)[:int(acc * 1000)]] = True
    b = a.copy()
    for s in range(3):
        b[s, np.flatnonzero(~a[s])[:20]] = True
    paired = paired_difference(a, b)
    unpaired = paired_difference(a, b, paired_seeds=False)
    assert paired["diff"] == pytest.approx(0.02) and unpaired["diff"] == pytest.approx(0.02)
    assert paired["lo"] > 0 and paired["var_seeds"] == 0
    assert unpaired["lo"] < 0 < unpaired["hi"]


def test_variance_parts_add_up_and_a_one_seed_pilot_variance_widens_the_interval():
    rng = np.random.default_rng(8)
    a, b = rng.random((4, 500)) < 0.7, rng.random((4, 500)) < 0.72
    r = paired_difference(a, b)
    assert r["var_examples"] + r["var_seeds"] + r["var_interaction"] == pytest.approx(r["se"] ** 2)
    bare = paired_difference(a[0], b[0])
    pilot = paired_difference(a[0], b[0], seed_var=1e-4)
    assert pilot["se"] ** 2 == pytest.approx(bare["se"] ** 2 + 1e-4) and pilot["seed_var_known"]
    assert pool_seed_var([(1.0, 2), (4.0, 4), (9.0, 0)]) == (3.0, 6)


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


def test_detectable_difference_is_2_8_standard_errors_for_the_normal_and_wider_on_few_df():
    assert detectable(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)
    assert detectable(0.01, 2) > 1.9 * detectable(0.01)  # t on 2 df: much wider
    assert detectable(0.01, alpha=0.05 / 14) == pytest.approx((2.9137 + 0.8416) * 0.01, rel=1e-3)  # Holm's first step
    assert holm_levels([0.01, np.nan, 0.04, 0.03]) == pytest.approx([0.05 / 3, np.nan, 0.05, 0.05 / 2], nan_ok=True)


def test_seeds_to_detect_grows_with_the_seed_variance_and_shrinks_with_the_difference():
    base = dict(n=1000, var_examples_one=1e-5, interaction_one=1e-4)
    few = seeds_to_detect(0.02, seed_var=1e-4, **base)
    assert seeds_to_detect(0.02, seed_var=4e-4, **base) > few > seeds_to_detect(0.05, seed_var=1e-4, **base)
    assert math.isinf(seeds_to_detect(0.0, seed_var=1e-4, **base))


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
