"""Bad study inputs that used to pass silently or fail late (issue 23's second batch, classes 4 to
7 and 9, and issue 18's exact compare_to): each stops the check / DAG build in one line naming the
key and what is allowed, or, where it is only a risk, warns when the plan is made."""
import logging

import pytest

from contrastlab.plan.config import ConfigError
from contrastlab.plan.study import plan
from workflow_helpers import set_key

EMBEDDED = {"data": {"source": "embedded", "max_train": 400}, "model": {"name": "embedded", "max_len": 32},
            "train": {"epochs": 1, "batch_size": 8, "grad_accum": 1}}


def study(experiments=None, **more):
    cfg = {**{k: dict(v) for k, v in EMBEDDED.items()},
           "experiments": experiments or {"baseline": {}, "scl": {"loss": {"alpha": 0.1}}}}
    for key, value in more.items():
        set_key(cfg, key, value)
    return cfg


def error_of(cfg, source="my.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        plan(cfg, source)
    text = str(e.value)
    assert text.startswith(f"{source}: ") and "\n" not in text, text
    return text


# ---- 4. the results folder ----------------------------------------------------------------------

@pytest.mark.parametrize("results, message", [
    ("", "my.yaml: results: '' names no folder (write e.g. results)"),
    ("  ", "my.yaml: results: '  ' names no folder"),
    ("/", "my.yaml: results: '/' is the file-system root"),
    ("out/{cell}", "my.yaml: results: 'out/{cell}': braces are Snakemake wildcards; name a folder without { }"),
])
def test_a_results_folder_that_is_no_folder_is_refused_at_check(results, message):
    assert message in error_of(study(results=results))


def test_a_results_path_that_is_an_existing_file_or_lies_inside_one_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert f"results = '{tmp_path}/notes.txt' is a file, not a folder" in error_of(
        study(results=str(tmp_path / "notes.txt")))
    assert "is inside" in error_of(study(results=str(tmp_path / "notes.txt" / "run1")))
    plan(study(results=str(tmp_path / "fresh" / "run1")), "my.yaml")  # a folder still to be made is fine


def test_a_tilde_in_results_is_expanded_once_so_every_path_agrees(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    p = plan(study(results="~/runs/a"), "my.yaml")
    assert p.study.results == str(tmp_path / "runs" / "a")


# ---- 5. cell names are folders --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "x y", "a" * 258])
def test_an_experiment_name_unsafe_as_a_folder_is_refused_naming_the_rule(name):
    msg = error_of(study({"baseline": {}, name: {"family": "scl"}}))
    assert "names its cells' folders: letters, digits, _ . - only, not starting with a dot, at most 128" in msg
    assert len(msg) < 300


def test_a_sweep_value_that_makes_an_unsafe_or_overlong_cell_name_is_refused():
    msg = error_of(study({"baseline": {}, "b": {"family": "baseline", "sweep": {"data.text_column": ["a/../b"]}}}))
    assert "experiments.b.sweep: its values make the cell name 'b_text_columna/../b', unsafe as a folder" in msg
    long = study({"baseline": {}, "b": {"family": "baseline", "sweep": {"data.text_column": ["t" * 200]}}})
    assert "(213 characters), unsafe as a folder" in error_of(long)


def test_cell_names_that_differ_only_in_case_are_refused():
    msg = error_of(study({"baseline": {}, "scl": {"loss": {"alpha": 0.1}}, "SCL": {"family": "scl"}}))
    assert "experiments 'scl' and 'SCL' make cells 'scl' and 'SCL', one folder on case-insensitive" in msg


# ---- 6. comparisons ---------------------------------------------------------------------------------

@pytest.mark.parametrize("experiments, message", [
    ({"baseline": {}, "scl": {"compare_to": "scl"}}, "experiments.scl.compare_to = 'scl': an experiment is not "
                                                     "compared with itself"),
    ({"baseline": {"compare_to": "scl"}, "scl": {}}, "experiments.baseline.compare_to = 'scl': baseline is the "
                                                     "baseline"),
    ({"baseline": {}, "lora": {"family": "baseline", "compare_to": "scl"}, "scl": {}, "token": {"compare_to": "lora"}},
     "experiments.token.compare_to = 'lora': lora is itself compared with scl"),
])
def test_compare_to_itself_or_along_a_chain_is_refused(experiments, message):
    assert message in error_of(study(experiments))


def test_a_reference_on_other_data_files_is_refused_at_dag_build(tmp_path):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("text,label\n" + "".join(f"t{i} {name},{i % 2}\n" for i in range(40)))
    cfg = study({"baseline": {}, "scl": {"data": {"files": {"train": str(tmp_path / "b.csv")}}}},
                **{"data": {"source": "files", "files": {"train": str(tmp_path / "a.csv")}}})
    msg = error_of(cfg)
    assert "cell scl: no cell of the baseline 'baseline' has the same data and sweep values" in msg
    assert "candidates: baseline: data.files" in msg and "b.csv" in msg


def test_compare_to_must_match_noise_and_few_shot_exactly_and_lists_the_candidates():
    noisy = {"family": "baseline", "data": {"few_shot_n": 100}, "sweep": {"data.label_noise": [0.2, 0.4]}}
    # an SCL arm at 0.1 noise against CE at 0.2 and 0.4: formerly paired with the first, 0.2
    msg = error_of(study({"ce": noisy, "scl": {"data": {"few_shot_n": 100}, "compare_to": "ce",
                                               "sweep": {"data.label_noise": [0.1]}}}, baseline="ce"))
    assert ("cell scl_label_noise0.1: no cell of experiments.scl.compare_to = 'ce' has the same data and sweep values "
            "(candidates: ce_label_noise0.2: data.label_noise 0.1 vs 0.2; ce_label_noise0.4: data.label_noise 0.1 "
            "vs 0.4)") in msg
    # a few-shot arm against a noisy full-data CE: it sets few_shot_n on purpose, but not the noise
    msg = error_of(study({"baseline": {}, "ce": {"family": "baseline", "data": {"label_noise": 0.2}},
                          "scl": {"data": {"few_shot_n": 20}, "compare_to": "ce"}}))
    assert "cell scl: no cell of experiments.scl.compare_to = 'ce'" in msg and "data.label_noise 0.0 vs 0.2" in msg


def test_a_train_draw_key_set_on_purpose_against_a_reference_that_leaves_it_is_a_comparison():
    p = plan(study({"baseline": {}, "noisy": {"family": "baseline", "sweep": {"data.label_noise": [0.2, 0.4]}},
                    "few": {"family": "baseline", "data": {"few_shot_n": 20}}}), "my.yaml")
    assert p.reference == {"baseline": "baseline", "noisy_label_noise0.2": "baseline",
                           "noisy_label_noise0.4": "baseline", "few": "baseline"}
    # the test split is not a train-draw key: a different test share is never "on purpose"
    msg = error_of(study({"baseline": {}, "other": {"family": "baseline", "data": {"test_fraction": 0.3}}}))
    assert "data.test_fraction 0.3 vs 0.2" in msg


def test_a_reference_whose_sweep_the_cell_does_not_pin_is_ambiguous_not_its_first_cell():
    msg = error_of(study({"baseline": {}, "rdrop": {"sweep": {"stages": [1, 2]}},
                          "scl": {"compare_to": "rdrop"}}))
    assert "cell scl: 2 cells of experiments.scl.compare_to = 'rdrop' match it (rdrop_stages1, rdrop_stages2)" in msg


# ---- 6. sweeps that make identical cells, and huge sweeps ------------------------------------------

@pytest.mark.parametrize("experiments, message", [
    ({"baseline": {}, "s": {"family": "scl", "sweep": {"alpha": [1, 1.0]}}},
     "experiments.s.sweep.alpha: cells s_alpha1 and s_alpha1.0 would be the same run: 1 and 1.0 are the same value"),
    ({"baseline": {}, "s": {"family": "scl", "sweep": {"layer": [-2, -3]}}},
     "experiments.s.sweep.layer: cells s_layer-2 and s_layer-3 would be the same run: these cells do not read "
     "loss.layer (loss.views: one reads no intermediate layer)"),
    ({"baseline": {}, "b": {"family": "baseline", "train": {"max_steps": 30}, "sweep": {"train.epochs": [1, 2]}}},
     "experiments.b.sweep.train.epochs: cells b_epochs1 and b_epochs2 would be the same run: these cells do not "
     "read train.epochs (train.max_steps sets the length)"),
    ({"baseline": {}, "f": {"family": "focal", "sweep": {"margin": [0.1, 0.3]}}},
     "do not read loss.margin (only loss.contrast: margin reads it)"),
])
def test_a_sweep_that_makes_identical_runs_is_refused_naming_the_key(experiments, message):
    assert message in error_of(study(experiments))


def test_a_sweep_key_read_by_some_of_its_cells_only_is_fine():
    p = plan(study({"baseline": {}, "s": {"family": "scl", "sweep": {"views": ["multi"], "layer": [-2, -3]}}}),
             "my.yaml")
    assert p.cell_names() == ["baseline", "s_layer-2_viewsmulti", "s_layer-3_viewsmulti"]


def test_a_million_cell_sweep_answers_at_once_with_the_count_and_the_key_that_raises_the_limit():
    values = list(range(100))
    huge = {"baseline": {}, "b": {"family": "baseline",
                                  "sweep": {"train.lr_head": [1e-3 * (i + 1) for i in values],
                                            "train.lr_top": [1e-5 * (i + 1) for i in values],
                                            "train.warmup_ratio": [i / 200 for i in values]}}}
    msg = error_of(study(huge))
    assert "the sweeps make 1000001 cells (b 1000000), more than max_cells = 1000: set max_cells: 1000001" in msg
    assert len(plan(study({"baseline": {}, "b": {"family": "baseline", "sweep": {"train.lr_head": [1e-3, 2e-3]}}},
                          max_cells=3), "my.yaml").cell_names()) == 3


# ---- 7. ranges ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds, message", [
    ([1, -1], "seeds: seed -1 is outside 0 <= seed < 2^32 (numpy's range)"),
    ([2**32], "seeds: seed 4294967296 is outside 0 <= seed < 2^32"),
])
def test_seeds_outside_numpys_range_are_refused_at_check(seeds, message):
    assert message in error_of(study(seeds=seeds))


def test_a_split_seed_outside_numpys_range_is_refused_at_check_also_when_swept():
    assert "data.split_seed = -3: must be >= 0" in error_of(study(**{"data.split_seed": -3}))
    msg = error_of(study({"baseline": {}, "b": {"family": "baseline", "sweep": {"data.split_seed": [1, 2**32]}}}))
    assert "experiments.b.sweep.data.split_seed = 4294967296: must be < 4294967296 (cell b_split_seed4294967296)" in msg


def test_lora_target_modules_the_model_lacks_are_refused_at_dag_build_from_its_weights_names():
    cfg = study({"baseline": {}, "lora": {"family": "baseline", "model": {"lora": {"target_modules": ["q_proj"]}}}})
    msg = error_of(cfg)
    assert "cell lora: model.lora.target_modules: 'q_proj' is not a module of embedded (its modules with 2-D " \
           "weights: dense, key, position_embeddings, query, token_type_embeddings, value, word_embeddings)" in msg
    ok = study({"baseline": {}, "lora": {"family": "baseline",
                                         "model": {"lora": {"target_modules": ["query", "attention.self.value"]}}}})
    assert plan(ok, "my.yaml").cell_names() == ["baseline", "lora"]


def test_a_lora_target_the_dag_build_could_not_see_stops_the_job_in_one_line_naming_the_key(tiny_deberta_dir):
    from contrastlab.plan.config import LoraConfig, ModelConfig
    from contrastlab.training.model import build_classifier

    with pytest.raises(ConfigError) as e:
        build_classifier(ModelConfig(name=str(tiny_deberta_dir), lora=LoraConfig(target_modules=["query"])), 2)
    assert str(e.value).startswith("model.lora.target_modules: 'query' is not a module of the encoder (its linear "
                                   "modules: dense, key_proj, pos_key_proj, pos_query_proj, query_proj, value_proj)"), str(e.value)


# ---- 9. an undertrained study ---------------------------------------------------------------------

def test_few_optimizer_steps_for_the_data_warn_when_the_plan_is_made(tmp_path, caplog):
    """The issue's own case: 600 texts of 5 classes, batch 32 x the default grad_accum 2, 3 epochs."""
    rows = "".join(f"article {i} about topic {i % 5},t{i % 5}\n" for i in range(600))
    (tmp_path / "news.csv").write_text("text,label\n" + rows)
    cfg = {"data": {"source": "files", "files": {"train": str(tmp_path / "news.csv")}},
           "model": {"name": "embedded", "max_len": 32}, "train": {"batch_size": 32},
           "experiments": {"baseline": {}, "lora": {"family": "baseline", "model": {"lora": {}}}}}
    with caplog.at_level(logging.WARNING, "contrastlab.plan.budget"):
        plan(cfg, "my.yaml")
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "contrastlab.plan.budget"]
    assert warning == ("my.yaml: cell(s) baseline, lora: at most 21 optimizer steps (3 epoch(s) x 7 steps of 32 x 2 "
                       "examples over at most 434 train examples): fewer than 50, so they may barely learn; raise "
                       "train.epochs or train.max_steps, or lower train.batch_size x train.grad_accum")
    caplog.clear()
    with caplog.at_level(logging.WARNING, "contrastlab.plan.budget"):  # 2 x 433 / 8 = 110 steps: enough
        plan(set_key(cfg, "train", {"batch_size": 8, "grad_accum": 1, "epochs": 2}), "my.yaml")
    assert not [r for r in caplog.records if r.name == "contrastlab.plan.budget"]


@pytest.mark.parametrize("declared, few_shot, max_steps, warned", [
    (None, None, 49, "at most 49 optimizer steps (train.max_steps): fewer than 50"),
    (None, None, 50, None),
    ([f"c{i}" for i in range(8)], None, 60, "fewer than 80 (10 per class x 8 classes)"),
    (["a", "b"], 10, None, "1 epoch(s) x 3 steps of 8 x 1 examples over at most 20 train examples"),
])
def test_the_step_rule_counts_max_steps_classes_and_few_shot_draws(declared, few_shot, max_steps, warned):
    from contrastlab.plan.budget import warn_few_steps
    from contrastlab.plan.grid import expand_grid
    from contrastlab.plan.config import StudyConfig

    cfg = study({"baseline": {}}, **{"train.max_steps": max_steps, "data.few_shot_n": few_shot,
                                     "data.labels": declared, "data.max_train": None})
    warnings = warn_few_steps(expand_grid(StudyConfig.model_validate(cfg)), "my.yaml")
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0], warnings


def test_the_default_and_preset_studies_plan_without_a_few_steps_warning(caplog):
    from contrastlab.cli import read_config
    from workflow_helpers import REPO

    for preset in ("config.yaml", "config/gunel.yaml", "config/paper.yaml"):
        with caplog.at_level(logging.WARNING, "contrastlab.plan.budget"):
            plan(read_config(REPO / preset), preset)
    assert not [r.getMessage() for r in caplog.records if r.name == "contrastlab.plan.budget"]


def test_the_embedded_corpus_class_count_the_rule_uses_is_the_sources():
    from contrastlab.plan.budget import EMBEDDED_CLASSES
    from contrastlab.data.sources import EMBEDDED_LABELS

    assert EMBEDDED_CLASSES == len(EMBEDDED_LABELS)


@pytest.mark.parametrize("labels, accuracy, near", [
    ([0, 1, 2, 3, 4] * 10, 0.22, True),  # the issue's LoRA cell: 5 balanced classes, chance 0.2
    ([0, 1, 2, 3, 4] * 10, 0.42, False),  # its baseline
    ([0] * 578 + [1] * 422, 0.60, True),  # the default study's majority class is 0.578
    ([0] * 578 + [1] * 422, 0.65, False),
])
def test_a_validation_accuracy_near_chance_is_flagged_against_the_majority_share(labels, accuracy, near):
    from contrastlab.analysis.metrics import near_chance

    out = near_chance(accuracy, labels)
    assert out["near_chance_val"] is near and out["val_chance"] == pytest.approx(max(labels.count(0),
                                                                                     labels.count(1)) / len(labels))


# ---- 6. the aggregate pairs only cells tested on the same examples ----------------------------------

def test_a_test_split_fingerprint_tells_the_same_examples_from_other_rows_with_the_same_numbers(tmp_path, tokenizer):
    from contrastlab.plan.config import DataConfig
    from contrastlab.data.splits import prepare
    from contrastlab.data.prepared import split_fingerprint

    for name, word in (("a.csv", "good"), ("b.csv", "other")):  # same rows, labels and count; other texts
        (tmp_path / name).write_text("text,label\n" + "".join(f"{word} text {i},{i % 2}\n" for i in range(40)))
    hashes = {}
    for name, max_len in (("a.csv", 32), ("a.csv", 16), ("b.csv", 32)):
        out = tmp_path / f"{name}-{max_len}"
        prepare(DataConfig(source="files", files={"train": str(tmp_path / name)}), tokenizer, max_len, out)
        hashes[(name, max_len)] = split_fingerprint(out)
    assert hashes[("a.csv", 32)] == hashes[("a.csv", 16)] != hashes[("b.csv", 32)]
    assert len(hashes[("a.csv", 32)]) == 16 and split_fingerprint(tmp_path / "nothing") is None


def test_the_aggregate_refuses_to_pair_a_cell_with_a_reference_tested_on_other_examples(tmp_path):
    import json
    from pathlib import Path

    from contrastlab.analysis.aggregate.collect import collect
    from test_aggregate import base_correct, run_of

    def runs(ref_hash):
        out = [run_of(tmp_path, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1)),
               run_of(tmp_path, "x", 1, "x", "baseline", {}, {}, base_correct(1))]
        for run, h in zip(out, (ref_hash, "aaaa")):
            path = Path(run["files"]["train_metrics"])
            path.write_text(json.dumps({**json.loads(path.read_text()), "test_examples": h}))
        return out

    assert set(collect(runs("aaaa"), "baseline").cells) == {"baseline", "x"}
    with pytest.raises(ValueError) as e:
        collect(runs("bbbb"), "baseline")
    assert str(e.value) == ("cell 'x' and its reference 'baseline' were tested on different examples (test split "
                            "aaaa vs bbbb): their predictions cannot be paired by row; compare cells prepared from "
                            "the same data")


def test_snakemakes_own_dag_build_stops_on_a_bad_seed_and_shows_the_few_steps_warning(tmp_path):
    """The same checks run when Snakemake builds the DAG: one line, no traceback (formerly a raw
    MissingInputException for a negative seed)."""
    import yaml

    from workflow_helpers import snakemake

    rows = "".join(f"article {i} about topic {i % 5},t{i % 5}\n" for i in range(600))
    (tmp_path / "news.csv").write_text("text,label\n" + rows)
    cfg = {"data": {"source": "files", "files": {"train": str(tmp_path / "news.csv")}},
           "model": {"name": "embedded", "max_len": 32}, "train": {"batch_size": 32},
           "results": str(tmp_path / "out"), "experiments": {"baseline": {}}}
    (tmp_path / "few.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, tmp_path / "few.yaml", "-n")
    assert "cell(s) baseline: at most 21 optimizer steps" in out.stdout + out.stderr
    (tmp_path / "neg.yaml").write_text(yaml.safe_dump({**cfg, "seeds": [-1]}))
    out = snakemake(tmp_path, tmp_path / "neg.yaml", "-n", check=False)
    assert out.returncode != 0 and f"config error: {tmp_path / 'neg.yaml'}: seeds: seed -1 is outside 0 <= seed < 2^32" in out.stderr
    assert "Traceback" not in out.stderr and "MissingInput" not in out.stderr


@pytest.mark.parametrize("data", [
    {"source": "embedded"}, {"source": "embedded", "few_shot_n": 20}, {"source": "embedded", "max_train": 300},
    {"source": "files", "files": {"train": "news.csv"}},
    {"source": "files", "files": {"train": "news.csv", "test": "news_test.jsonl"}, "val_fraction": 0.2},
])
def test_the_train_size_bound_is_never_below_the_split_that_prepare_makes(data, tmp_path, monkeypatch):
    """An upper bound, so the warning never fires on a cell that has the steps it needs."""
    from contrastlab.plan.budget import _source_rows, train_rows_at_most
    from contrastlab.plan.config import DataConfig
    from contrastlab.data.splits import load_splits

    monkeypatch.chdir(tmp_path)
    (tmp_path / "news.csv").write_text("text,label\n" + "".join(f"article {i},t{i % 5}\n" for i in range(600)))
    (tmp_path / "news_test.jsonl").write_text("".join(f'{{"text": "test {i}", "label": "t{i % 5}"}}\n'
                                                      for i in range(50)))
    cfg = DataConfig.model_validate(data)
    actual = len(load_splits(cfg)[0]["train"])
    bound = train_rows_at_most(cfg, _source_rows(cfg))
    assert actual <= bound, (actual, bound)
    if cfg.source == "files":
        assert bound <= actual + 3  # a header line and rounding up
