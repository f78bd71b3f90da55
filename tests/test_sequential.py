"""Seeds added until decided (contrastlab.analysis.sequential, contrastlab.operations.runloop): the spending
boundaries against a simulated score process, the procedure's error rate and power on simulated
predictions of known truth (contrastlab.analysis.simulate), the rounds' seeds, the config's schedule."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from contrastlab.plan.config import ConfigError, StudyConfig, validate
from contrastlab.operations.runloop import grow, read_seeds
from contrastlab.analysis.sequential import BOUNDARIES, decide, look_levels, nominal_levels, simulate_sequential, spent
from contrastlab.analysis.simulate import Truth, simulate

SCHEDULE = {"start": 3, "max": 10, "step": 1, "boundary": "obrien-fleming"}


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_the_boundaries_spend_at_each_look_what_the_spending_function_allows(boundary):
    """A first crossing at look k of a simulated Brownian score has the chance α(t_k) − α(t_{k−1})."""
    t = np.array([s / 10 for s in range(3, 11)])
    z = norm.isf(np.array(nominal_levels(tuple(t), 0.05, boundary)) / 2)
    rng = np.random.default_rng(0)
    b = np.cumsum(rng.normal(size=(300_000, len(t))) * np.sqrt(np.diff(np.r_[0, t])), 1)
    cross = np.abs(b) / np.sqrt(t) >= z
    first = np.where(cross.any(1), cross.argmax(1), -1)
    got = np.array([np.mean(first == k) for k in range(len(t))])
    want = np.diff(np.r_[0, [spent(x, 0.05, boundary) for x in t]])
    assert np.abs(got - want).max() < 0.0015
    assert abs(got.sum() - 0.05) < 0.002


def test_one_look_is_the_fixed_test_and_obrien_fleming_spends_little_early():
    assert nominal_levels((1.0,), 0.05, "obrien-fleming")[0] == pytest.approx(0.05)
    seeds, levels, eq = look_levels(3, 10, 1, "obrien-fleming")
    assert seeds == list(range(3, 11)) and levels[0] < 0.001 and 0.03 < levels[-1] < 0.05
    assert look_levels(3, 10, 3, "pocock")[0] == [3, 6, 9, 10]  # max is always the last look
    assert all(a < b for a, b in zip(levels, levels[1:]))


@pytest.mark.parametrize("n, truth", [(200, Truth()), (500, Truth(seed_sd=0.3))], ids=["examples", "seeds"])
def test_sequential_false_positive_rate_at_no_difference_stays_near_five_percent_where_naive_looks_do_not(n, truth):
    """Test-set noise dominating, then the seeds (where the t reference at few seeds matters)."""
    ref, cells = simulate(np.random.default_rng(7), 2000, 10, n, 0.0, truth)
    cell = cells[0]
    rate = {b: np.isin(simulate_sequential(ref, cell, 3, 1, b)["word"], ["better", "worse"]).mean()
            for b in (None, *BOUNDARIES)}
    assert rate[None] > 0.10  # testing every look at 5%: eight looks, about three times the error
    for b in BOUNDARIES:
        assert rate[b] <= 0.065, (b, rate[b])


def test_power_at_a_planted_difference_and_seeds_saved():
    ref, cells = simulate(np.random.default_rng(3), 1000, 10, 1000, 0.03, Truth())
    for b in BOUNDARIES:
        r = simulate_sequential(ref, cells[0], 3, 1, b)
        assert (r["word"] == "better").mean() >= 0.8, b
        assert (r["word"] == "worse").mean() < 0.01
        assert r["seeds"].mean() < 9  # stops early when the difference is clear


def _study(delta, seed, n=2000):
    ref, cells = simulate(np.random.default_rng(seed), 1, 10, n, delta, Truth())
    return ref[0].astype(bool), cells[0, 0].astype(bool)


def test_a_planted_difference_decides_better_and_a_null_study_ends_equivalent_or_undecided_at_max():
    ref, cell = _study(0.05, 11)
    better = decide(ref, cell, SCHEDULE, margin=0.01, target_mdd=None)
    assert better["decision"] == "better" and better["stopped"] == "boundary" and better["seeds"] < 10
    for seed in range(3):
        ref, cell = _study(0.0, 20 + seed)
        null = decide(ref, cell, SCHEDULE, margin=0.03, target_mdd=None)
        assert null["stopped"] in ("equivalence", "max seeds") and null["decision"] in ("equivalent", "undecided")
        assert null["stopped"] != "max seeds" or null["seeds"] == 10


def test_a_comparison_short_of_its_next_look_stays_open_and_a_small_mdd_stops_it():
    ref, cell = _study(0.0, 5, n=300)
    early = decide(ref[:4], cell[:4], SCHEDULE, margin=0.001, target_mdd=None)
    assert early["stopped"] == "open" and early["seeds"] == 4 and early["looks"] == 2
    precise = decide(ref, cell, SCHEDULE, margin=0.001, target_mdd=0.5)
    assert precise["stopped"] == "MDD below target" and precise["mdd"] <= 0.5 and precise["seeds"] < 10


def test_a_round_adds_seeds_only_to_the_open_comparisons_cells_and_their_reference():
    rows = [{"cell": "a", "reference": "base", "stopped": "open", "seeds": "3"},
            {"cell": "b", "reference": "base", "stopped": "boundary", "seeds": "3"},
            {"cell": "c", "reference": "a", "stopped": "open", "seeds": "9"}]
    seeds = {"a": [1, 2, 3], "b": [1, 2, 3], "base": [1, 2, 3], "c": list(range(1, 10))}
    nxt = grow(seeds, rows, start=3, step=2, most=10)
    assert nxt == {"a": list(range(1, 11)), "b": [1, 2, 3], "base": [1, 2, 3, 4, 5], "c": list(range(1, 11))}


BASE = {"data": {"source": "embedded"}, "experiments": {"baseline": {}}}


@pytest.mark.parametrize("seeds, message", [
    ({"start": 5, "max": 3}, "seeds: max = 3 is below start = 5"),
    ({"start": 1}, "seeds.start = 1: must be >= 2"),
    ({"start": 3, "boundary": "haybittle"}, "seeds.boundary = 'haybittle'"),
    ({"stat": 3}, "seeds.stat: unknown key; did you mean start?"),
    ("3", "allowed a list of seeds ([1, 2, 3]) or a schedule {start: 3, max: 10}"),
])
def test_a_bad_schedule_is_one_line_naming_the_key(seeds, message):
    with pytest.raises(ConfigError) as e:
        validate(StudyConfig, BASE | {"seeds": seeds}, "s.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_list_form_still_works_and_a_schedule_starts_every_cell_at_start():
    assert validate(StudyConfig, BASE | {"seeds": [4, 2]}, "s.yaml").seed_list() == [4, 2]
    study = validate(StudyConfig, BASE | {"seeds": {"start": 3, "max": 6}}, "s.yaml")
    assert study.seed_list() == [1, 2, 3] and study.schedule.max == 6


def test_a_seeds_file_the_schedule_does_not_allow_stops_the_dag_build(tmp_path):
    study = validate(StudyConfig, BASE | {"seeds": {"start": 3, "max": 5}, "results": str(tmp_path)}, "s.yaml")
    path = tmp_path / "sequential_seeds.json"
    path.write_text(json.dumps({"seeds": {"baseline": [1, 2, 3, 4]}}))
    assert read_seeds(str(tmp_path), study.schedule, "s.yaml") == {"baseline": [1, 2, 3, 4]}
    path.write_text(json.dumps({"seeds": {"baseline": list(range(1, 8))}}))
    with pytest.raises(ConfigError, match="cell baseline has seeds .* seeds.max 5"):
        read_seeds(str(tmp_path), study.schedule, "s.yaml")


def test_contrastlab_run_on_a_seed_list_says_it_needs_a_schedule(tmp_path, monkeypatch, capsys):
    from contrastlab.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(json.dumps(BASE | {"seeds": [1, 2]}))
    assert main(["run", "s.yaml", "--cores", "2"]) == 2
    err = capsys.readouterr().err
    assert "seeds is a list: contrastlab run needs a schedule (seeds: {start: 3, max: 10})" in err
    assert err.count("\n") == 1


def test_the_cost_to_decide_counts_a_shared_reference_once_and_nothing_when_all_decided():
    from contrastlab.analysis.aggregate.sequential import cost_to_decide
    schedule = {"start": 3, "max": 7, "step": 1, "boundary": "obrien-fleming"}
    rows = pd.DataFrame([{"cell": "a", "reference": "base", "seeds": 3, "stopped": "open"},
                         {"cell": "b", "reference": "base", "seeds": 3, "stopped": "open"},
                         {"cell": "c", "reference": "base", "seeds": 3, "stopped": "boundary"}])
    line = cost_to_decide(rows, schedule, 600.0)
    assert "2 open comparison(s)" in line and "at most 12 more runs" in line and "2.0 h" in line  # a, b, base x 4
    assert cost_to_decide(rows.assign(stopped="boundary"), schedule, 600.0) is None
