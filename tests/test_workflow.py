"""The Snakemake DAG end to end on a tiny random DeBERTa-v2 and a few hundred real snippets,
then what a rerun does: nothing when nothing changed; one cell's chain when its LR changed."""
import json

import pandas as pd
import pytest

from workflow_helpers import planned_jobs, snakemake, write_config

pytestmark = pytest.mark.e2e
STAGE_FILES = ["train/metrics.json", "train/weights.safetensors", "train/predictions.csv", "train/history.csv",
               "train/config.json", "embed/embeddings.npz", "probe/metrics.json", "plots/tsne.png",
               "plots/curves.png"]


@pytest.fixture(scope="module")
def finished_run(tiny_deberta_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    config = write_config(workdir / "config.yaml", tiny_deberta_dir)
    snakemake(workdir, config, "--cores", "2", "--resources", "gpu=1")
    return workdir, config


def test_every_cell_has_every_output_and_the_table_lists_them(finished_run):
    workdir, _ = finished_run
    for cell in ("baseline", "smooth_label_smoothing0.1"):
        for f in STAGE_FILES:
            assert (workdir / "results" / "cells" / cell / "seed1" / f).exists(), f"{cell}/{f}"
    probe = json.loads((workdir / "results/cells/baseline/seed1/probe/metrics.json").read_text())
    assert {"svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "layer0_svm_acc"} <= set(probe)
    table = pd.read_csv(workdir / "results/tables/summary.csv")
    assert table["cell"].tolist() == ["baseline", "smooth_label_smoothing0.1"]
    assert table["accuracy_mean"].between(0, 1).all()
    assert "baseline" in (workdir / "results/tables/summary.md").read_text()


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
    assert planned_jobs(workdir, changed) == {"probe": 2, "aggregate": 1}


def test_lint_is_clean(finished_run):
    workdir, config = finished_run
    out = snakemake(workdir, config, "--lint", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
