"""Tuning (config `tune:`): the trials drawn per arm, the expected best of n trials against a
brute-force enumeration, the selection rule, the DAG-build errors, a trial that never reads the
test split, and a tuned study end to end on the tiny random model."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from contrastlab.plan import layout
from contrastlab.analysis.aggregate.tuning import curve, expected_max
from contrastlab.plan.config import CellConfig, ConfigError, DataConfig, RuntimeConfig, TuneConfig
from contrastlab.plan.study import plan
from contrastlab.plan.tuning import draw_values, select

BASE = {"data": {"source": "embedded", "max_train": 200, "max_eval": 100}, "model": {"name": "embedded", "max_len": 64},
        "train": {"max_steps": 20}, "seeds": [1, 2], "runtime": {"device": "cpu"}}
SPACE = {"train.lr_top": {"low": 1e-5, "high": 1e-3, "log": True}, "train.lr_head": [1e-4, 1e-3, 1e-2]}


def tune(**kw):
    return TuneConfig.model_validate({"trials": 6, "space": SPACE, **kw})


def planned(experiments, **extra):
    return plan({**BASE, **extra, "experiments": experiments}, "my.yaml")


# ---- the draws ----------------------------------------------------------------------------------

def test_random_draws_are_fixed_by_the_seed_and_stay_in_their_space():
    a, b, c = draw_values(tune(seed=3)), draw_values(tune(seed=3)), draw_values(tune(seed=4))
    assert a == b and a != c and len(a) == 6
    assert all(1e-5 <= v["train.lr_top"] <= 1e-3 and v["train.lr_head"] in (1e-4, 1e-3, 1e-2) for v in a)
    logs = np.log10([v["train.lr_top"] for v in draw_values(tune(trials=400))])
    assert logs.min() < -4.5 and logs.max() > -3.5  # log-uniform: both decades are reached
    ints = draw_values(TuneConfig.model_validate({"trials": 50, "space": {"train.max_steps": {"low": 5, "high": 9}}}))
    assert {v["train.max_steps"] for v in ints} <= set(range(5, 10)) and all(isinstance(v["train.max_steps"], int)
                                                                                for v in ints)


def test_an_arm_whose_space_adds_a_key_tries_the_same_values_of_the_shared_keys():
    wider = TuneConfig.model_validate({"trials": 6, "space": {**SPACE, "loss.alpha": [0.1, 0.5]}})
    assert [{k: v[k] for k in SPACE} for v in draw_values(wider)] == draw_values(tune())


def test_grid_takes_every_point_or_a_seeded_subset_without_repeats():
    space = {"train.lr_top": [1e-5, 1e-4, 1e-3], "train.lr_head": [1e-4, 1e-3]}
    full = draw_values(TuneConfig(trials=6, space=space, method="grid"))
    assert sorted(map(json.dumps, full)) == sorted(json.dumps({"train.lr_head": h, "train.lr_top": t})
                                                   for t in space["train.lr_top"] for h in space["train.lr_head"])
    part = draw_values(TuneConfig(trials=4, space=space, method="grid", seed=1))
    assert len({json.dumps(p) for p in part}) == 4 and all(p in full for p in part)
    assert part == draw_values(TuneConfig(trials=4, space=space, method="grid", seed=1))


# ---- the expected best of n trials ----------------------------------------------------------------

@pytest.mark.parametrize("scores", [[0.61, 0.55, 0.7, 0.58, 0.66, 0.52, 0.69],
                                    [0.5, 0.6, 0.6, 0.5, 0.7]])  # ties too
def test_expected_max_is_the_mean_best_over_every_subset_of_n_trials(scores):
    for n in range(1, len(scores) + 1):
        brute = np.mean([max(s) for s in itertools.combinations(scores, n)])
        assert expected_max(scores, n) == pytest.approx(brute, abs=1e-12)
    c = curve(scores)
    assert c["expected_best"].iloc[0] == pytest.approx(np.mean(scores)) and c["expected_best"].iloc[-1] == max(scores)
    assert (np.diff(c["expected_best"]) >= -1e-12).all()
    assert ((c["lo"] <= c["expected_best"] + 1e-12) & (c["expected_best"] <= c["hi"] + 1e-12)).all()


def test_the_bootstrap_interval_covers_the_expected_best_of_the_space_it_was_drawn_from():
    # known truth: scores ~ N(0.6, 0.05); E[max of 3 of the space] by a large simulation
    rng = np.random.default_rng(0)
    truth = rng.normal(0.6, 0.05, size=(200_000, 3)).max(1).mean()
    covered = sum(lo <= truth <= hi for lo, hi in (
        curve(rng.normal(0.6, 0.05, 12), seed=i).iloc[2][["lo", "hi"]] for i in range(60)))
    assert covered >= 45  # 95% nominal; a percentile bootstrap of 12 draws covers somewhat less


def test_select_takes_the_best_validation_accuracy_then_the_lower_loss_then_the_first():
    assert select([{"val_accuracy": 0.6, "val_loss": 0.5}, {"val_accuracy": 0.7, "val_loss": 0.9}]) == 1
    assert select([{"val_accuracy": 0.7, "val_loss": 0.6}, {"val_accuracy": 0.7, "val_loss": 0.5}]) == 1
    assert select([{"val_accuracy": 0.7, "val_loss": 0.5}, {"val_accuracy": 0.7, "val_loss": 0.5}]) == 0


# ---- the plan and its errors ----------------------------------------------------------------------

def test_every_tuned_cell_gets_the_same_trials_with_the_budget_and_seed_of_the_tune_section():
    p = planned({"baseline": {}, "smooth": {"family": "baseline", "loss": {"label_smoothing": 0.1}}},
                tune={"trials": 3, "space": SPACE, "max_steps": 5, "max_train": 50, "seed": 7})
    assert [(t.arm, t.index) for t in p.trials] == [(a, i) for a in ("baseline", "smooth") for i in range(3)]
    assert [t.values for t in p.trials_of("baseline")] == [t.values for t in p.trials_of("smooth")]
    t = p.trials[0].cell.config
    assert (t.train.max_steps, t.data.max_train, t.seed) == (5, 50, 7)
    assert t.train.lr_top == p.trials[0].values["train.lr_top"]
    assert {c.config.train.max_steps for c in p.cells} == {20}  # the cells keep the study's budget
    assert [o.name for o in p.outputs if o.name.startswith("tuning")] == ["tuning", "tuning_curves"]
    assert not planned({"baseline": {}}).trials


def test_check_and_cells_say_what_is_tuned(capsys):
    from contrastlab.cli import REPO, main

    preset = str(REPO / "config" / "gunel_tuning.yaml")
    assert main(["check", preset]) == 0
    assert "16 tuning trials (8 per tuned cell)" in capsys.readouterr().out
    assert main(["cells", preset]) == 0
    assert "(tuned: 8 trials of loss.alpha, train.lr_head, train.lr_top)" in capsys.readouterr().out
    main(["plan", preset])  # exit 3 where a comparison cannot reach its target: beside the point here
    assert "Tuning: 16 trials (8 per tuned cell), run once before the seeds: not costed" in capsys.readouterr().out


@pytest.mark.parametrize("tune_section, message", [
    ({"trials": 2, "space": {"train.lr_tpo": [1e-4]}}, "tune.space.train.lr_tpo: unknown key; did you mean train.lr_top?"),
    ({"trials": 2, "space": {"loss.alhpa": [0.1]}}, "tune.space.loss.alhpa: unknown key"),
    ({"trials": 2, "space": {"data.max_train": [10]}}, "tune.space.data.max_train: data keys cannot be tuned"),
    ({"trials": 2, "space": {"lr_top": [1e-4]}}, "tune.space.lr_top: a tuned key is a path"),
    ({"trials": 2, "space": {"train.lr_top": {"low": 1e-3, "high": 1e-4}}}, "low = 0.001 must be below high"),
    ({"trials": 2, "space": {"train.lr_top": {"low": 0, "high": 1e-4, "log": True}}}, "a log range needs low > 0"),
    ({"trials": 2, "method": "grid", "space": {"train.lr_top": {"low": 1e-5, "high": 1e-4}}}, "method grid needs a list"),
    ({"trials": 3, "method": "grid", "space": {"train.lr_top": [1e-4, 1e-3]}}, "more than the grid's 2 points"),
    ({"trials": 2, "space": {"train.lr_top": [-1.0]}}, "trial 0 of cell baseline (train.lr_top = -1.0): train.lr_top"),
    ({"trials": 2, "max_steps": 5, "space": {"train.max_steps": [10, 20]}}, "cannot be tuned as well"),
    ({"trials": 0, "space": {"train.lr_top": [1e-4]}}, "tune.trials = 0: must be >= 1"),
])
def test_a_bad_tune_section_stops_the_plan_naming_the_key(tune_section, message):
    with pytest.raises(ConfigError, match="my.yaml: .*" + message.replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("?", r"\?")):
        planned({"baseline": {"loss": {"label_smoothing": 0.1}}}, tune=tune_section)


def test_a_key_that_is_swept_cannot_be_tuned_too():
    with pytest.raises(ConfigError, match=r"experiments\.wide\.tune\.space\.train\.lr_top: also swept"):
        planned({"baseline": {}, "wide": {"family": "baseline", "sweep": {"train.lr_top": [1e-4, 1e-3]},
                                          "tune": {"trials": 2, "space": {"train.lr_top": [1e-5]}}}},
                tune={"trials": 2, "space": SPACE})


def test_a_tuned_arm_against_an_untuned_or_differently_tuned_reference_stops_the_plan():
    with pytest.raises(ConfigError, match=r"experiments\.smooth\.tune: cell smooth is compared with baseline, but "
                                          r"baseline is not tuned"):
        planned({"baseline": {}, "smooth": {"family": "baseline", "tune": {"trials": 2, "space": SPACE}}})
    with pytest.raises(ConfigError, match=r"experiments\.smooth\.tune\.trials = 3 but its reference baseline has 2"):
        planned({"baseline": {}, "smooth": {"family": "baseline", "tune": {"trials": 3, "space": SPACE}}},
                tune={"trials": 2, "space": SPACE})
    # the same budget over a wider space is fair
    p = planned({"baseline": {}, "smooth": {"family": "baseline", "tune": {
        "trials": 2, "space": {**SPACE, "loss.label_smoothing": [0.0, 0.1]}}}}, tune={"trials": 2, "space": SPACE})
    assert len(p.trials) == 4


# ---- a trial never reads the test split -------------------------------------------------------------

def test_a_trial_trains_and_scores_on_validation_without_the_test_split(tiny_deberta_dir, tmp_path):
    from contrastlab.data.splits import prepare
    from contrastlab.training.model import load_tokenizer
    from contrastlab.training.train import train

    prepared = tmp_path / "prepared"
    prepare(DataConfig(source="embedded", max_train=64, max_eval=40), load_tokenizer(str(tiny_deberta_dir)), 32,
            prepared)
    with np.load(prepared / "tokens.npz") as z:  # remove the test split: a trial that read it would fail
        kept = {k: z[k] for k in z.files if not k.startswith("test_")}
    np.savez(prepared / "tokens.npz", **kept)
    cfg = CellConfig.model_validate({"cell": "baseline/trial0", "family": "baseline", "seed": 0,
                                     "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 1},
                                     "train": {"max_steps": 4, "batch_size": 16, "grad_accum": 1, "eval_every": 2,
                                               "select": "best_val", "precision": "fp32"}})
    out = {k: tmp_path / "trial" / v for k, v in layout.TRIAL_FILES.items()}
    state = {k: tmp_path / "trial" / v.rpartition("/")[2] for k, v in layout.TRAIN_STATE.items()}
    runtime = RuntimeConfig(device="cpu", threads=1)
    metrics = train(cfg, runtime, prepared, out, state, score_test=False)
    assert metrics["splits_read"] == ["train", "val"] and "accuracy" not in metrics
    epochs = pd.read_csv(out["epochs"])
    assert metrics["val_accuracy"] == epochs["val_accuracy"].max() and metrics["steps"] == 4
    assert json.loads(out["metrics"].read_text())["val_loss"] == pytest.approx(metrics["val_loss"])
    full = {k: tmp_path / "full" / v for k, v in layout.STAGE_FILES["train"].items()}
    with pytest.raises(KeyError, match="test_"):  # the same run scored on test needs the split
        train(cfg, runtime, prepared, full, state)


# ---- a tuned study end to end ------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_tuned_study_runs_its_trials_selects_and_reports_the_expected_best_curves(tiny_deberta_dir, tmp_path):
    from workflow_helpers import planned_jobs, snakemake, write_config

    budget = {"trials": 2, "seed": 1, "max_steps": 2, "max_train": 48}
    lr = {"train.lr_head": {"low": 1e-4, "high": 1e-2, "log": True}}
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, **{
        "probe.enabled": False, "train.epochs": 1, "tune": {**budget, "space": lr},
        "experiments": {"baseline": {"family": "baseline"},
                        "smooth": {"family": "baseline", "loss": {"label_smoothing": 0.1},
                                   "tune": {**budget, "space": {**lr, "loss.label_smoothing": [0.05, 0.2]}}}}})
    assert planned_jobs(tmp_path, config) == {"prepare": 2, "tune_trial": 4, "tune_select": 2, "train": 2,
                                              "aggregate": 1}
    snakemake(tmp_path, config, "--cores", "2")
    results = tmp_path / "results"
    selected = {arm: json.loads((results / "tuning" / arm / "selected.json").read_text()) for arm in ("baseline", "smooth")}
    for arm, selection in selected.items():
        scores = [t["val_accuracy"] for t in selection["trials"]]
        assert len(scores) == 2 and selection["val_accuracy"] == max(scores)
        trial = json.loads((results / "tuning" / arm / f"trial{selection['trial']}" / "metrics.json").read_text())
        assert trial["splits_read"] == ["train", "val"] and trial["steps"] == 2 and trial["n_train"] == 48
        ran = json.loads((results / "cells" / arm / "seed1" / "train" / "config.json").read_text())
        assert ran["train"]["lr_head"] == selection["values"]["train.lr_head"] and ran["data"]["max_train"] == 160
    smoothing = selected["smooth"]["values"]["loss.label_smoothing"]
    headline = pd.read_csv(results / "tables" / "headline.csv").set_index("cell")
    assert headline.loc["smooth", "loss"] == f"CE (label smoothing {smoothing:g})"  # the selected value, not 0.1
    table = pd.read_csv(results / "tables" / "tuning.csv")
    assert sorted(table["cell"].unique()) == ["baseline", "smooth"] and sorted(table["n"].unique()) == [1, 2]
    best = table[table["n"] == 2].set_index("cell")["expected_best_val_accuracy"]
    assert best.to_dict() == pytest.approx({arm: s["val_accuracy"] for arm, s in selected.items()})
    assert (results / "figures" / "tuning_curves.png").stat().st_size > 1000
    assert planned_jobs(tmp_path, config) == {}  # cached like any cell
