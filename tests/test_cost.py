"""The training cost of a cell (contrastlab.plan.cost, contrastlab.plan.flopcount) and compute-matched
controls (train.match_budget): passes per family from its Params, FLOPs against a hand count,
the step arithmetic of a matched budget, its DAG errors, the verdict's remark, and a tiny
end-to-end run whose matched cell trains the expected number of steps."""
import math

import pandas as pd
import pytest
import torch

from contrastlab.objectives import families

from contrastlab.plan import layout
from contrastlab.analysis.aggregate.collect import CellInfo, Study
from contrastlab.analysis.aggregate.verdict import verdict_lines
from contrastlab.plan.config import ConfigError, ModelConfig, RuntimeConfig, TrainConfig
from contrastlab.plan.cost import compute_remark, passes, train_cost
from contrastlab.data.splits import prepare
from contrastlab.plan.flopcount import layer_weights, per_token
from contrastlab.plan.hfconfig import model_info
from contrastlab.training.model import load_tokenizer
from contrastlab.data.prepared import load_prepared
from contrastlab.plan.study import plan
from contrastlab.training.train import train


@pytest.mark.parametrize("family, loss, expected", [
    ("baseline", {}, 1), ("rdrop", {"stages": 1}, 1), ("rdrop", {"stages": 2}, 2), ("simcse", {}, 2),
    ("simcse", {"stages": 1}, 1), ("scl", {"views": "multi"}, 1), ("token", {}, 1), ("cluster", {}, 1),
    ("multilayer", {"layers": [0, 1]}, 1), ("focal", {}, 1)])
def test_encoder_passes_per_step_come_from_the_family_params(family, loss, expected):
    params = families.parse_params(family, loss)
    assert params.encoder_passes() == expected
    assert passes(params, grad_cache=False) == (expected, 0)
    assert passes(params, grad_cache=True) == (expected, expected)  # GradCache: the views again without a graph


def test_flops_per_token_match_a_hand_count_of_the_tiny_model(tiny_deberta_dir):
    from transformers import AutoModel

    config = model_info(str(tiny_deberta_dir)).config
    d, ff, n_layers = 32, 64, 4  # tests/tiny_model.py
    p = 4 * d * d + 2 * d * ff  # Q, K, V, O and the two feed-forward matrices
    assert layer_weights(config) == p == 8192
    # independently: the weight matrices of the loaded encoder's layers that every token goes through
    # (DeBERTa's pos_key_proj / pos_query_proj project the relative-position embeddings, once per pass)
    encoder = AutoModel.from_pretrained(str(tiny_deberta_dir))
    matrices = sum(m.weight.numel() for name, m in encoder.encoder.layer.named_modules()
                   if isinstance(m, torch.nn.Linear) and "pos_" not in name)
    assert matrices == n_layers * p
    n = n_layers * p
    assert per_token(config, ModelConfig(trainable_layers=4)).trained == 6 * n  # every layer trains
    assert per_token(config, ModelConfig(trainable_layers=1)).trained == 2 * n + 4 * p  # backward of the top layer only
    assert per_token(config, ModelConfig(trainable_layers=0)).trained == 2 * n  # only the head: no encoder backward
    assert per_token(config, ModelConfig(trainable_layers=1)).no_grad == 2 * n
    lora = ModelConfig.model_validate({"lora": {"r": 2}})
    adapters = n_layers * 2 * 2 * (d + d)  # query and value, r (d_in + d_out) each
    assert per_token(config, lora).trained == 2 * (n + adapters) + 2 * (n + adapters) + 2 * adapters


def _study(model, tmp_path, experiments, **train):
    return {"results": str(tmp_path / "results"),
            "data": {"source": "embedded", "max_train": 64, "max_eval": 40},
            "model": {"name": model, "max_len": 32, "trainable_layers": 2},
            "train": {"epochs": 1, "batch_size": 8, "grad_accum": 1, "lr_top": 1e-3, "lr_head": 1e-3,
                      "precision": "fp32", **train},
            "runtime": {"device": "cpu", "threads": 1}, "probe": {"enabled": False},
            "experiments": {"baseline": {}, **experiments}}


def _cell(p, experiment):
    return next(c for c in p.cells if c.experiment == experiment)


@pytest.mark.parametrize("by, ref_layers, scale", [
    ("flops", 2, 2.0), ("passes", 2, 2.0),
    # the arm trains 2 of 4 layers: (2L + 4T) = 16 layer-units per token and pass, x 2 passes = 32;
    # the reference trains 1: 2L + 4 = 12 per token -> 32 / 12 by FLOPs, 2 by passes
    ("flops", 1, round(32 / 12, 6)), ("passes", 1, 2.0)])
def test_match_budget_scales_the_references_steps_by_the_cost_ratio(tiny_deberta_dir, tmp_path, by, ref_layers, scale):
    p = plan(_study(str(tiny_deberta_dir), tmp_path, {
        "rdrop2": {"family": "rdrop", "loss": {"stages": 2}, "train": {"epochs": 3}, "compare_to": "ce_budget"},
        "ce_budget": {"family": "baseline", "model": {"trainable_layers": ref_layers},
                      "train": {"match_budget": "rdrop2", "match_by": by}}}), "my.yaml")
    ref = _cell(p, "ce_budget").config.train
    assert ref.steps_scale == pytest.approx(scale)
    assert ref.epochs == 3 and ref.max_steps is None  # the arm's length, not the study's 1 epoch
    assert ref.total_steps(7) == math.ceil(3 * 7 * scale - 1e-9)
    assert _cell(p, "baseline").config.train.steps_scale == 1.0
    assert p.reference["rdrop2"] == "ce_budget"


def test_total_steps_scale_max_steps_and_epochs_alike():
    assert TrainConfig(max_steps=10, steps_scale=2.5).total_steps(99) == 25
    assert TrainConfig(epochs=3, steps_scale=1.5).total_steps(7) == 32  # ceil(31.5)
    assert TrainConfig(epochs=2).total_steps(7) == 14


@pytest.mark.parametrize("experiments, message", [
    ({"ce": {"family": "baseline", "train": {"match_budget": "nope"}}},
     "experiments.ce: train.match_budget = 'nope': no such experiment"),
    ({"ce": {"family": "baseline", "train": {"match_budget": "ce"}}}, "cannot be given its own budget"),
    ({"a": {"family": "rdrop", "train": {"match_budget": "b"}}, "b": {"family": "baseline",
                                                                       "train": {"match_budget": "a"}}},
     "a chain or a cycle"),
    ({"a": {"family": "rdrop"}, "b": {"family": "rdrop", "train": {"match_budget": "a"}},
      "c": {"family": "baseline", "train": {"match_budget": "b"}}}, "b itself takes the budget of 'a'"),
    ({"a": {"family": "rdrop", "train": {"batch_size": 4}}, "c": {"family": "baseline", "train": {"match_budget": "a"}}},
     "its step has 8 examples and a's 4"),
    ({"a": {"family": "rdrop", "sweep": {"alpha": [0.1, 0.2]}}, "c": {"family": "baseline",
                                                                       "train": {"match_budget": "a"}}},
     "2 cells (a_alpha0.1, a_alpha0.2) have the data and sweep values of cell c"),
])
def test_match_budget_errors_name_the_key_at_dag_build(tiny_deberta_dir, tmp_path, experiments, message):
    with pytest.raises(ConfigError) as e:
        plan(_study(str(tiny_deberta_dir), tmp_path, experiments), "my.yaml")
    assert str(e.value).startswith("my.yaml: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_compute_remark_says_when_the_arms_costs_differ_by_more_than_five_percent():
    assert compute_remark(2.0e12, 1.0e12) == "not compute-matched (arm 2.0x the reference's FLOPs)"
    assert compute_remark(1.0e12, 2.0e12) == "not compute-matched (arm 0.5x the reference's FLOPs)"
    assert compute_remark(1.04e12, 1.0e12) == ""
    assert compute_remark(float("nan"), 1.0e12) == ""  # a cell trained before the cost was recorded


def test_the_verdict_line_adds_the_remark_only_to_an_unmatched_comparison():
    runs = pd.DataFrame({"cell": ["base", "arm", "matched"], "seed": [1, 1, 1], "train_flops": [1e12, 2e12, 1.02e12]})
    cells = {c: CellInfo(c, c, "baseline", "base", {}, {}) for c in runs["cell"]}
    study = Study(runs, cells, "base")
    row = {"reference": "base", "lo": -0.01, "hi": 0.03, "verdict": "undecided", "seeds": 1, "p_holm": 0.4,
           "n_test": 100, "seed_sd": 0.01, "seed_sd_from": "a pilot", "mdd": 0.05, "holm_level": 0.05,
           "seeds_needed": float("nan"), "aso_eps_min": float("nan"), "collapsed": None}
    comp = pd.DataFrame([{"cell": "arm", "diff": 0.01, **row}, {"cell": "matched", "diff": 0.01, **row}])
    arm, matched = verdict_lines(study, comp)
    assert arm.endswith("; not compute-matched (arm 2.0x the reference's FLOPs)")
    assert "compute-matched" not in matched


def test_a_matched_reference_trains_the_arms_budget_end_to_end(tiny_deberta_dir, tmp_path):
    """R-Drop two-stage (2 encoder passes) for 1 epoch, and CE given its budget: 2 epochs' steps."""
    p = plan(_study(str(tiny_deberta_dir), tmp_path, {
        "rdrop2": {"family": "rdrop", "loss": {"stages": 2}, "compare_to": "ce_budget"},
        "ce_budget": {"family": "baseline", "train": {"match_budget": "rdrop2"}}}), "my.yaml")
    prepared = tmp_path / "prepared"
    prepare(p.study.data, load_tokenizer(str(tiny_deberta_dir)), 32, prepared)
    n_train = len(load_prepared(prepared).splits["train"])
    runtime = RuntimeConfig(device="cpu", threads=1, log_every=100)
    metrics = {}
    for name in ("rdrop2", "ce_budget"):
        d = tmp_path / name
        out = {k: d / v for k, v in layout.STAGE_FILES["train"].items()}
        state = {k: d / v for k, v in layout.TRAIN_STATE.items()}
        metrics[name] = train(_cell(p, name).config, runtime, prepared, out, state)
        history = pd.read_csv(out["history"])
        assert metrics[name]["train_tokens"] == history["tokens"].sum()
    steps = math.ceil(n_train / 8)
    assert metrics["rdrop2"]["steps"] == steps
    assert metrics["ce_budget"]["steps"] == 2 * steps  # the same batch, twice the steps
    assert metrics["rdrop2"]["train_forward_passes"] == 2 and metrics["ce_budget"]["train_forward_passes"] == 1
    config = model_info(str(tiny_deberta_dir)).config
    pt = per_token(config, _cell(p, "rdrop2").config.model)
    assert metrics["rdrop2"]["train_flops"] == metrics["rdrop2"]["train_tokens"] * 2 * pt.trained
    ce = _cell(p, "ce_budget").config
    assert metrics["ce_budget"] == metrics["ce_budget"] | train_cost(
        families.parse_params(ce.family, ce.loss), ce.model, config, metrics["ce_budget"]["train_tokens"], False)
    # the budgets agree to the padding of the length-grouped batches
    assert compute_remark(metrics["rdrop2"]["train_flops"], metrics["ce_budget"]["train_flops"]) == ""


def test_match_by_flops_reads_the_models_config_only_when_the_arms_models_differ(tmp_path):
    experiments = {"rdrop2": {"family": "rdrop", "loss": {"stages": 2}},
                   "ce": {"family": "baseline", "train": {"match_budget": "rdrop2"}}}
    p = plan(_study("someorg/not-cached", tmp_path, experiments), "my.yaml")  # a hub model the cache lacks
    assert _cell(p, "ce").config.train.steps_scale == 2.0  # same model, every pass trains: FLOPs follow passes
    experiments["ce"]["model"] = {"trainable_layers": 1}
    with pytest.raises(ConfigError, match="match_by flops needs the config.json of someorg/not-cached"):
        plan(_study("someorg/not-cached", tmp_path, experiments), "my.yaml")


def test_every_comparison_table_shows_the_cost_and_the_verdict_flags_an_unmatched_comparison(tmp_path):
    """The aggregate of R-Drop one- and two-stage against the baseline (written as test_aggregate writes
    them), each run's cost as `train` records it: two-stage has 2 passes and 2x the FLOPs."""
    import json

    from test_aggregate import all_outputs, base_correct, declared, run_of, same_accuracy
    from contrastlab.analysis.aggregate.run import aggregate

    grid = {"baseline": ("baseline", "baseline", {}, {}, base_correct),
            "rdrop_stages1": ("rdrop", "rdrop", {"stages": 1}, {"stages": 1}, same_accuracy),
            "rdrop_stages2": ("rdrop", "rdrop", {"stages": 2}, {"stages": 2}, same_accuracy)}
    runs = []
    for cell, (experiment, family, sweep, loss, correct) in grid.items():
        for seed in (1, 2, 3):
            run = run_of(tmp_path, cell, seed, experiment, family, sweep, loss, correct(seed))
            path = run["files"]["train_metrics"]
            metrics = json.loads(open(path).read())
            passes_ = loss.get("stages", 1)
            metrics.update(train_forward_passes=passes_, train_flops=passes_ * 3.0e15)
            open(path, "w").write(json.dumps(metrics))
            runs.append(run)
    outputs = all_outputs(tmp_path, ["baseline", "rdrop"])
    aggregate(runs, outputs, baseline="baseline", config={"data": {"source": "embedded"}}, source="t.yaml",
              report=declared(["baseline", "rdrop"]))
    for table in ("headline", "rdrop"):
        rows = {r["cell"]: r for r in pd.read_csv(outputs[f"{table}_csv"]).to_dict("records")}
        assert rows["rdrop_stages2"]["train_forward_passes_mean"] == 2 and rows["baseline"]["train_flops_mean"] == 3e15
        assert rows["rdrop_stages2"]["train_device_seconds_mean"] > 0
        text = open(outputs[f"{table}_md"]).read()
        header = next(line for line in text.splitlines() if line.startswith("| cell"))
        assert all(f" {h} " in header for h in ("passes/step", "train FLOPs", "device-s")), header
        assert "6.00 PFLOP" in text and "; train FLOPs ≈ tokens computed ×" in text
    headline = open(outputs["headline_md"]).read()
    two = next(line for line in headline.splitlines() if line.startswith("- **rdrop_stages2**"))
    one = next(line for line in headline.splitlines() if line.startswith("- **rdrop_stages1**"))
    assert two.endswith("; not compute-matched (arm 2.0x the reference's FLOPs)") and "compute-matched" not in one
