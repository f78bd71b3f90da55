"""The Snakemake DAG end to end on a tiny random DeBERTa-v2 and a few hundred real snippets,
then what a rerun does: nothing when nothing changed; only the stale part when a cell's
hyper-parameter, a probe setting or a loss family's code changed. It runs in a copy of the
workflow so that a test can edit the package's code."""
import json

import pandas as pd
import pytest

from workflow_helpers import copy_workflow, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.e2e
STAGE_FILES = ["train/metrics.json", "train/weights.safetensors", "train/predictions.csv", "train/history.csv",
               "train/config.json", "embed/embeddings.npz", "probe/metrics.json", "plots/tsne.png",
               "plots/curves.png"]
CELLS = ["baseline", "smooth_label_smoothing0.1", "rdrop_stages1"]


@pytest.fixture(scope="module")
def finished_run(tiny_deberta_dir, tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("e2e"))
    config = write_config(workdir / "config.yaml", tiny_deberta_dir)
    snakemake(workdir, config, "--cores", "2", "--resources", "gpu=1")
    return workdir, config


def test_every_cell_has_every_output_and_the_table_lists_them(finished_run):
    workdir, _ = finished_run
    for cell in CELLS:
        for f in STAGE_FILES:
            assert (workdir / "results" / "cells" / cell / "seed1" / f).exists(), f"{cell}/{f}"
    probe = json.loads((workdir / "results/cells/baseline/seed1/probe/metrics.json").read_text())
    assert {"svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "layer0_svm_acc"} <= set(probe)
    table = pd.read_csv(workdir / "results/tables/headline.csv")
    assert table["cell"].iloc[0] == "baseline" and sorted(table["cell"]) == sorted(CELLS)
    assert table["accuracy_mean"].between(0, 1).all()
    assert (table["delta_lo"] <= table["delta"]).iloc[1:].all() and (table["delta"] <= table["delta_hi"]).iloc[1:].all()
    assert "baseline" in (workdir / "results/tables/headline.md").read_text()
    rdrop = pd.read_csv(workdir / "results/tables/rdrop.csv")
    assert rdrop["cell"].tolist() == ["baseline", "rdrop_stages1"] and rdrop["step_time_ratio_mean"].iloc[0] == 1.0
    for name in ("representation.csv", "headline.html"):
        assert (workdir / "results/tables" / name).exists(), name
    for name in ("forest.png", "loss_curves.png", "grad_norm.png", "rdrop_cost.png"):
        assert (workdir / "results/figures" / name).read_bytes()[:4] == b"\x89PNG", name
    assert not (workdir / "results/tables/token_k_alpha.md").exists()  # no token cells in this grid


def test_nothing_to_do_after_a_finished_run(finished_run):
    assert planned_jobs(*finished_run) == {}


def test_changing_one_cells_lr_reruns_only_that_cells_chain(finished_run, tiny_deberta_dir, tmp_path):
    workdir, _ = finished_run
    changed = write_config(tmp_path / "changed.yaml", tiny_deberta_dir,
                           **{"experiments.smooth.train": {"lr_top": 5.0e-4}})
    assert planned_jobs(workdir, changed) == {"train": 1, "embed": 1, "probe": 1, "plot": 1, "aggregate": 1}


def test_changing_a_probe_setting_reruns_only_probes_and_the_aggregate(finished_run, tiny_deberta_dir, tmp_path):
    workdir, _ = finished_run
    changed = write_config(tmp_path / "changed.yaml", tiny_deberta_dir, **{"probe.folds": 4})
    assert planned_jobs(workdir, changed) == {"probe": len(CELLS), "aggregate": 1}


def test_editing_a_loss_familys_code_reruns_only_its_cells(finished_run):
    workdir, config = finished_run
    family_code = workdir / "src" / "contrastlab" / "objectives" / "rdrop.py"
    original = family_code.read_text()
    family_code.write_text(original + "\n# an edit\n")
    try:
        assert planned_jobs(workdir, config) == {"train": 1, "embed": 1, "probe": 1, "plot": 1, "aggregate": 1}
    finally:
        family_code.write_text(original)
    assert planned_jobs(workdir, config) == {}


def test_lint_is_clean(finished_run):
    workdir, config = finished_run
    out = snakemake(workdir, config, "--lint", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
