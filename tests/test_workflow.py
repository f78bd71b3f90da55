"""The Snakemake DAG end to end on a tiny random DeBERTa-v2 and a few hundred real snippets, then
what a rerun does on the finished study: nothing when nothing changed, nor for a runtime setting,
a reordering of the experiments, a code change no cell imports or an edit of prose (docstrings,
comments, descriptions); only the stale part when a cell's hyper-parameter, a default it takes, a
probe setting or the code a family imports changed, or an experiment was added. It runs in a copy of the workflow so that a test can edit the package's code."""
import json

import pandas as pd
import pytest
import yaml

from contrastlab.plan import layout
from workflow_helpers import copy_workflow, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.e2e
CELLS = ["baseline", "smooth_label_smoothing0.1", "rdrop_stages1"]
CHAIN = {"train": 1, "embed": 1, "probe": 1, "plot": 1, "aggregate": 1}


@pytest.fixture(scope="module")
def finished_run(tiny_deberta_dir, tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("e2e"))
    config = write_config(workdir / "study.yaml", tiny_deberta_dir)
    snakemake(workdir, config, "--cores", "2", "--resources", "gpu=1")
    return workdir, config


def edited(tmp_path, tiny_deberta_dir, edit) -> "Path":  # noqa: F821
    cfg = yaml.safe_load(write_config(tmp_path / "base.yaml", tiny_deberta_dir).read_text())
    edit(cfg)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_every_cell_has_every_output_and_the_tables_list_them(finished_run):
    workdir, _ = finished_run
    for cell in CELLS:
        for stage in ("train", "embed", "probe", "plot"):
            for f in layout.stage_files("results", stage, cell, 1).values():
                assert (workdir / f).exists(), f
    probe = json.loads((workdir / "results/cells/baseline/seed1/probe/metrics.json").read_text())
    assert {"svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "layer0_svm_acc"} <= set(probe)
    table = pd.read_csv(workdir / "results/tables/headline.csv")
    assert table["cell"].iloc[0] == "baseline" and sorted(table["cell"]) == sorted(CELLS)
    assert table["accuracy_mean"].between(0, 1).all() and (table["trainable_params_mean"] > 0).all()
    assert (table["delta_lo"] <= table["delta"]).iloc[1:].all() and (table["delta"] <= table["delta_hi"]).iloc[1:].all()
    md = (workdir / "results/tables/headline.md").read_text()
    verdict = md.split("**Verdict**")[1].split("One seed per cell")[0]
    assert all(f"**{c}** vs baseline" in verdict for c in CELLS[1:])  # a line per comparison, in the report too
    rdrop = pd.read_csv(workdir / "results/tables/rdrop.csv")
    assert rdrop["cell"].tolist() == ["baseline", "rdrop_stages1"] and rdrop["step_time_ratio_mean"].iloc[0] == 1.0
    for name in ("representation.csv", "headline.html"):
        assert (workdir / "results/tables" / name).exists(), name
    for name in ("forest.png", "loss_curves.png", "grad_norm.png", "val_curves.png", "rdrop_cost.png"):
        assert (workdir / "results/figures" / name).read_bytes()[:4] == b"\x89PNG", name
    assert not (workdir / "results/tables/token_k_alpha.md").exists()  # no token cells in this grid
    landing = (workdir / "results/report.rst").read_text()
    assert "study.yaml" in landing and "3 cells x 1 seed(s)" in landing and "**Verdict**" in landing
    status = pd.read_csv(workdir / "results/status.csv")
    assert status["state"].tolist() == ["done"] * 3


def test_nothing_to_do_after_a_finished_run(finished_run):
    assert planned_jobs(*finished_run) == {}


def test_the_report_opens_with_the_study_and_its_verdict(finished_run):
    workdir, config = finished_run
    snakemake(workdir, config, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "Verdict" in html and "study.yaml" in html and "Configuration: results" not in html


def test_changing_one_cells_lr_reruns_only_that_cells_chain(finished_run, tiny_deberta_dir, tmp_path):
    workdir, _ = finished_run
    changed = write_config(tmp_path / "changed.yaml", tiny_deberta_dir,
                           **{"experiments.smooth.train": {"lr_top": 5.0e-4}})
    assert planned_jobs(workdir, changed) == CHAIN


def test_changing_a_probe_setting_reruns_only_probes_their_plots_and_the_aggregate(finished_run, tiny_deberta_dir,
                                                                                    tmp_path):
    workdir, _ = finished_run
    changed = write_config(tmp_path / "changed.yaml", tiny_deberta_dir, **{"probe.folds": 4})
    assert planned_jobs(workdir, changed) == {"probe": 3, "plot": 3, "aggregate": 1}


@pytest.mark.parametrize("key, value", [("log_every", 7), ("eval_batch_size", 13), ("threads", 2), ("mem_mb", 1234),
                                        ("runtime_min", 5), ("gpus", 1), ("device", "auto"), ("tf32", False),
                                        ("deterministic", True), ("compile", True), ("allow_slow_precision", True),
                                        ("tracking", ["mlflow"])])
def test_changing_a_runtime_setting_plans_nothing(finished_run, tiny_deberta_dir, tmp_path, key, value):
    workdir, _ = finished_run
    changed = edited(tmp_path, tiny_deberta_dir, lambda c: c["runtime"].__setitem__(key, value))
    assert planned_jobs(workdir, changed) == {}


def test_reordering_the_experiments_plans_nothing(finished_run, tiny_deberta_dir, tmp_path):
    workdir, _ = finished_run
    changed = edited(tmp_path, tiny_deberta_dir,
                     lambda c: c.update(experiments=dict(reversed(list(c["experiments"].items())))))
    assert list(yaml.safe_load(changed.read_text())["experiments"])[0] == "rdrop"
    assert planned_jobs(workdir, changed) == {}


def test_appending_an_experiment_plans_only_its_cells_and_the_aggregate(finished_run, tiny_deberta_dir, tmp_path):
    workdir, _ = finished_run
    changed = edited(tmp_path, tiny_deberta_dir, lambda c: c["experiments"].update(
        lora={"family": "baseline", "model": {"lora": {"r": 4}}}))
    assert planned_jobs(workdir, changed) == CHAIN


def _edit_and_plan(workdir, config, module, text="\nEDITED = 1\n"):
    """The plan after appending `text` to a module of the copy, or replacing text[0] by text[1]."""
    path = workdir / "src" / "contrastlab" / module
    original = path.read_text()
    assert isinstance(text, str) or text[0] in original, f"{text[0]!r} not in {module}"
    path.write_text(original + text if isinstance(text, str) else original.replace(*text, 1))
    try:
        return planned_jobs(workdir, config)
    finally:
        path.write_text(original)


def test_editing_a_familys_code_reruns_only_its_cells(finished_run):
    assert _edit_and_plan(*finished_run, "objectives/families/rdrop/objective.py") == CHAIN


def test_editing_a_helper_reruns_exactly_the_cells_whose_family_imports_it(finished_run):
    # losses.py: imported by the rdrop objective (symmetric_kl), not by the baseline's
    assert _edit_and_plan(*finished_run, "objectives/losses.py") == CHAIN
    # attention.py: imported by the token, cluster, multilayer and scl views only; none in this grid
    assert _edit_and_plan(*finished_run, "objectives/attention.py") == {}
    assert planned_jobs(*finished_run) == {}


def test_a_docstring_or_comment_edit_reruns_nothing(finished_run):
    path = finished_run[0] / "src" / "contrastlab" / "training" / "train.py"
    original = path.read_text()
    path.write_text(original.replace('"""`train(cfg,', '"""Edited docstring. `train(cfg,', 1) + "# a comment\n")
    try:
        assert planned_jobs(*finished_run) == {}
    finally:
        path.write_text(original)


@pytest.mark.parametrize("module, old, new", [
    ("plan/config.py", 'description="passes over the train split"', 'description="passes over the training split"'),
    ("objectives/families/rdrop/__init__.py", 'description="weight of the symmetric KL"', 'description="weight of the KL term"'),
])
def test_a_description_edit_reruns_nothing(finished_run, module, old, new):
    assert _edit_and_plan(*finished_run, module, text=(old, new)) == {}


@pytest.mark.parametrize("module, old, new, plan", [
    # only the baseline cell takes the default; smooth sets 0.1, rdrop has no such key
    ("objectives/families/baseline/__init__.py", "label_smoothing: float = Field(0.0,", "label_smoothing: float = Field(0.05,",
     CHAIN),
    ("plan/config.py", "tau: float = Field(0.07,", "tau: float = Field(0.1,", {}),  # no contrastive cell here
])
def test_a_default_value_edit_reruns_exactly_the_cells_it_changes(finished_run, module, old, new, plan):
    assert _edit_and_plan(*finished_run, module, text=(old, new)) == plan


@pytest.mark.parametrize("module, plan", [
    ("objectives/families/rdrop/report.py", {"aggregate": 1}),  # imported by name by the aggregate only
    ("objectives/families/baseline/__init__.py", {**{s: 2 for s in ("train", "embed", "probe", "plot")}, "aggregate": 1}),
])
def test_a_family_module_edit_reruns_its_cells_and_the_aggregate(finished_run, module, plan):
    assert _edit_and_plan(*finished_run, module) == plan


def test_lint_is_clean(finished_run):
    workdir, config = finished_run
    out = snakemake(workdir, config, "--lint", check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_status_table_names_a_failed_cell_and_its_cause_when_the_aggregate_cannot_run(tiny_deberta_dir, tmp_path):
    config = write_config(tmp_path / "config.yaml", tiny_deberta_dir, **{
        "experiments": {"baseline": {"family": "baseline"},
                        "broken": {"family": "baseline", "train": {"lr_top": 1.0e30, "lr_head": 1.0e30}}}})
    out = snakemake(tmp_path, config, "--cores", "2", "--retries", "1", check=False)
    assert out.returncode != 0 and not (tmp_path / "results/tables/headline.md").exists()
    # its retry, in the same run, stopped at once: a non-finite loss would only repeat
    assert "not retried: attempt 1 failed with non-finite loss" in out.stdout + out.stderr
    status = pd.read_csv(tmp_path / "results/status.csv").set_index("cell")
    assert status.loc["baseline", "state"] == "done"
    broken = status.loc["broken"]
    assert (broken["state"], broken["stage"], broken["cause"]) == ("failed", "train", "non-finite loss")
    assert broken["log"].endswith("logs/train/broken/seed1.log") and "the loss is" in broken["last_error"]
    md = (tmp_path / "results/status.md").read_text()
    assert "1 done, 1 failed, 0 not run" in md
    # the same command again (after a fix) redoes only the failed cell's chain
    assert planned_jobs(tmp_path, config) == {"train": 1, "embed": 1, "probe": 1, "plot": 1, "aggregate": 1}


def test_a_local_out_of_memory_retry_halves_the_micro_batch_and_the_status_shows_the_first_cause(
        tiny_deberta_dir, tmp_path, max_micro_batch):
    config = write_config(tmp_path / "config.yaml", tiny_deberta_dir, **{"experiments": {"baseline": {}}})
    max_micro_batch("8")  # a "device" that fits 8 examples per micro-batch
    snakemake(tmp_path, config, "--cores", "2", "--retries", "1")
    metrics = json.loads((tmp_path / "results/cells/baseline/seed1/train/metrics.json").read_text())
    assert (metrics["micro_batch"], metrics["grad_accum"], metrics["effective_batch"]) == (8, 4, 32)
    status = pd.read_csv(tmp_path / "results/status.csv").iloc[0]
    assert (status["state"], status["first_cause"], status["micro_batch"], status["attempts"]) == (
        "done", "GPU out of memory", 8, 2)


def test_jobs_per_gpu_runs_that_many_gpu_jobs_at_once_under_resources_gpu_1(tiny_deberta_dir, tmp_path):
    """`--resources gpu=1` with runtime.jobs_per_gpu 2: the two training jobs (each asking for the
    resource gpu) overlap in time; with one job per GPU the resource would run them one after the
    other. (No GPU here: each job's device is the CPU, but the scheduling is Snakemake's either way.)"""
    config = write_config(tmp_path / "config.yaml", tiny_deberta_dir, **{
        "runtime": {"device": "auto", "threads": 1, "gpus": 1, "jobs_per_gpu": 2, "log_every": 2},
        "probe": {"enabled": False},
        "experiments": {"baseline": {"family": "baseline"}, "smooth": {"family": "baseline",
                                                                       "sweep": {"label_smoothing": [0.1]}}}})
    snakemake(tmp_path, config, "--cores", "2", "--resources", "gpu=1", "--until", "train")
    spans = []
    for cell in ("baseline", "smooth_label_smoothing0.1"):
        record = json.loads((tmp_path / layout.attempts_file("results", "train", f"{cell}/seed1")).read_text())
        spans.append((record["attempts"][-1]["started"], record["attempts"][-1]["ended"]))
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
