"""`contrastlab plan`: the MDD and seeds a study is planned with, checked against simulated truth
(running the planned seeds detects a true Δ of the target size in >= 75% of studies), the
variance read back from an earlier study's files, the cost arithmetic, and exit status 3 with a
suggestion that works when the target is out of reach."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contrastlab.analysis import calibration as cal
from contrastlab.plan import layout
from contrastlab.plan import plan_cost
from contrastlab.plan import power
from contrastlab.cli import REPO, main
from contrastlab.analysis.simulate import Truth, simulate
from contrastlab.analysis.stats import difference_batch


def write_predictions(results, cell, correct):
    """An earlier study's per-example predictions of `cell`, seeds 1.., as the train job writes them."""
    for s, row in enumerate(correct, start=1):
        path = layout.stage_files(str(results), "train", cell, s)["predictions"]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        rows = {"index": range(len(row)), "row": np.arange(len(row)) * 3, "correct": row}
        pd.DataFrame(rows).to_csv(path, index=False)


def test_the_planned_seeds_detect_a_true_difference_of_the_target_size_with_at_least_75_percent_power():
    """Pilots of 3 seeds (N = 1000, about one accuracy point of seed spread) plan the seeds for a
    target MDD of 0.03; a study that runs the median of those seeds finds a true Δ of 0.03 in
    >= 75% of replicates (one comparison: level 0.05). The plan is not wildly wasteful either."""
    rng = np.random.default_rng(5)
    ref, cells = simulate(rng, 40, 3, 1000, 0.03, Truth())
    planned = []
    for a, b in zip(ref, cells[0]):
        ex, inter, seed = power.measured_parts(a, b)
        v = power.Variance(ex, inter, seed, 2.0, "pilot", "pilot")
        planned.append(power.seeds_needed(v, 1000, 0.03, power.ALPHA, 40))
    seeds = int(np.median(planned))
    assert 3 <= seeds <= 20, planned
    found, _ = cal.power_and_coverage(rng, seeds, 1000, 0.03, 600)
    assert found >= 0.75, (seeds, found)
    fewer, _ = cal.power_and_coverage(rng, max(2, seeds // 2), 1000, 0.03, 600)
    assert fewer < found  # the seeds matter: half as many detect it less often


def test_the_variance_is_read_back_from_an_earlier_studys_predictions(tmp_path):
    ref, cells = simulate(np.random.default_rng(1), 1, 4, 500, 0.0, Truth())
    write_predictions(tmp_path, "base", ref[0])
    write_predictions(tmp_path, "scl", cells[0, 0])
    v = power.earlier_variance(str(tmp_path), {"scl": "base", "other": "base"}, None)
    r = difference_batch(ref, cells[0])
    assert v["scl"].examples == pytest.approx(r["var_examples"][0] * 500)
    assert v["scl"].interaction == pytest.approx(r["var_interaction"][0] * 4 * 500)
    assert v["scl"].seed == pytest.approx(r["seed_var"][0]) and v["scl"].seed_df == 3
    assert v["other"].examples == v["scl"].examples and "median" in v["other"].source  # not in the earlier study
    assert power.earlier_variance(str(tmp_path / "none"), {"scl": "base"}, None) == {}


def test_a_seed_spread_no_test_set_can_beat_is_told_apart_from_a_test_noise_floor():
    v = power.assumed_variance(0.01)
    lines = power.plan_power({"a": "ref"}, {"a": 1000}, {"a": v}, 3, 10, 0.014)
    assert math.isinf(lines[0].needed) and lines[0].mdd_at_max > 0.014
    n = lines[0].test_needed
    assert power.mdd(v, int(n), 10, power.ALPHA) <= 0.014 < power.mdd(v, int(n * 0.95), 10, power.ALPHA)
    wide = power.assumed_variance(0.05)  # 5 points of seed spread: 10 seeds cannot get to 2 points
    assert math.isinf(power.plan_power({"a": "ref"}, {"a": 1000}, {"a": wide}, 3, 10, 0.02)[0].test_needed)


def test_a_schedule_of_seeds_plans_from_its_start_up_to_its_max():
    class Schedule:
        start, max = 3, 8
    assert power.planned_seeds(Schedule()) == (3, 8)
    assert power.planned_seeds([1, 2]) == (2, power.MAX_SEEDS)
    assert power.planned_seeds(list(range(12))) == (12, 12)


def test_the_cost_of_a_run_is_its_steps_at_the_measured_step_time_plus_its_jobs_start_up(tmp_path):
    import yaml

    from contrastlab.plan.study import plan

    p = plan(yaml.safe_load((REPO / "config" / "gunel.yaml").read_text()), "gunel.yaml")
    configs = {c.name: c.config for c in p.cells}
    for cell, seed, step_s, train_s, wall in (("ce_few_shot_n20", 1, 0.5, 80.0, 100.0),
                                              ("ce_few_shot_n20", 2, 0.7, 90.0, 130.0)):
        m = layout.stage_files(str(tmp_path), "train", cell, seed)["metrics"]
        Path(m).parent.mkdir(parents=True, exist_ok=True)
        Path(m).write_text(json.dumps({"seed": seed, "step_time_s": step_s,
                                       "train_time_s": train_s}))
        b = Path(layout.benchmark_file(str(tmp_path), "train", cell, seed))
        b.parent.mkdir(parents=True, exist_ok=True)
        b.write_text(f"s\th:m:s\n{wall}\t0:01:40\n")
    cost = plan_cost.earlier_costs(str(tmp_path), configs, jobs=1)
    # 150 steps (train.max_steps) x the median step 0.6 s + the median start-up (20 and 40 s: 30 s)
    assert cost["ce_few_shot_n20"].seconds == pytest.approx(150 * 0.6 + 30)
    assert cost["scl_few_shot_n20"].seconds == pytest.approx(150 * 0.6 + 30)  # unmeasured: the median step
    assert "median" in cost["scl_few_shot_n20"].how
    pilot = plan_cost.pilot_costs(configs, 0.25, jobs=2)
    assert pilot["ce_few_shot_n20"].seconds == pytest.approx(150 * 0.25 + 2 * plan_cost.JOB_START_S)


def test_plan_exits_3_when_out_of_reach_and_its_suggested_test_size_reaches_the_target(capsys):
    assert main(["plan", str(REPO / "config" / "grid.yaml")]) == 3  # one seed, 1,000 test examples
    out = capsys.readouterr()
    assert "| rdrop_stages1 | baseline | 1000 |" in out.out
    line = out.err.strip().splitlines()[-1]
    assert "cannot reach MDD 0.020 within 10 seeds" in line and "test examples would" in line
    n = int(line.split("about ")[1].split(" test")[0].replace(",", ""))
    assert main(["plan", str(REPO / "config" / "grid.yaml"), "--n-test", str(n)]) == 0
    assert main(["plan", str(REPO / "config" / "grid.yaml"), "--n-test", str(int(n * 0.9))]) == 3


def test_the_gpu_cost_of_a_study_comes_from_counted_flops(tmp_path):
    counted = tmp_path / "paper_cost.json"
    counted.write_text(json.dumps({"rows": [{"cells": ["a", "b"], "flop_per_run": 58e15}], "counts": {"test": 25000}}))
    cost = plan_cost.flop_costs(counted, {"a": None, "c": None})
    rate = next(iter(plan_cost.RATES.values()))
    assert cost["a"].seconds == pytest.approx(58e15 / rate + 2 * plan_cost.JOB_START_S)
    assert math.isnan(cost["c"].seconds) and plan_cost.test_examples_of_flops(counted) == 25000


def test_a_pilot_times_the_baselines_steps_on_this_device(tiny_deberta_dir, tmp_path, capsys):
    from workflow_helpers import write_config

    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, results=str(tmp_path / "results"))
    assert main(["plan", str(config), "--pilot", "2", "--n-test", "1000000"]) == 0
    out = capsys.readouterr().out
    assert "a 2-step pilot of baseline on cpu" in out
    step = float(out.split("pilot of baseline on cpu")[1].split(": ")[1].split(" s per step")[0])
    assert 0 < step < 60
    row = next(ln for ln in out.splitlines() if ln.startswith("| rdrop_stages1 |"))
    assert f"x {step:.3f} s + 2 x 15 s" in row
    assert main(["plan", str(config), "--n-test", "0"]) == 2
