"""`contrastlab run` end to end on the tiny random DeBERTa-v2: round 1 runs seeds 1..start of every
cell, an undecided comparison gets one more seed on its cell and reference in round 2, and the
finished seeds are not retrained."""
import csv
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from contrastlab.plan import layout
from data_helpers import WORDS
from workflow_helpers import REPO, local_env, write_config

pytestmark = pytest.mark.e2e


def _half_learnable(path, n=300):
    """Texts whose first word is their label for 70% of them and a neutral word otherwise: a tiny
    model learns them in a few dozen steps without reaching 100% (so that seeds differ)."""
    rng = np.random.default_rng(0)
    labels = rng.choice(["neg", "pos"], n)
    first = np.where(rng.random(n) < 0.7, labels, rng.choice(WORDS, n))
    pd.DataFrame({"review": [f"{w} {WORDS[i % 10]} movie number {i}" for i, w in enumerate(first)],
                  "sentiment": labels}).to_csv(path, index=False)
    return str(path)


def test_contrastlab_run_adds_seeds_to_undecided_comparisons_without_retraining(tiny_deberta_dir, tmp_path):
    data = {"source": "files", "files": {"train": _half_learnable(tmp_path / "texts.csv")},
            "text_column": "review", "label_column": "sentiment", "max_eval": 60}
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, **{
        "data": data, "train.epochs": 6, "train.lr_top": 3e-3, "train.lr_head": 3e-3,
        "seeds": {"start": 2, "max": 3}, "probe.enabled": False,
        "analysis.target_mdd": 0.001, "analysis.equivalence_margin": 0.001,  # 60 test examples decide nothing
        "experiments": {"baseline": {"family": "baseline"},
                        "smooth": {"family": "baseline", "sweep": {"label_smoothing": [0.1]}}}})
    cmd = [sys.executable, "-m", "contrastlab.cli", "run", str(config), "--snakefile", str(REPO / "Snakefile"),
           "--cores", "2", "--resources", "gpu=1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=local_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "round 2" in proc.stdout and "round 3" not in proc.stdout, proc.stdout

    results = tmp_path / "results"
    seeds = json.loads((results / "sequential_seeds.json").read_text())["seeds"]
    assert seeds == {"baseline": [1, 2, 3], "smooth_label_smoothing0.1": [1, 2, 3]}
    for cell in seeds:
        attempts = json.loads((tmp_path / layout.attempts_file("results", "train", layout.job_key(cell, 1)))
                              .read_text())["attempts"]
        assert len(attempts) == 1  # seed 1 trained once, in round 1
        assert (tmp_path / layout.stage_files("results", "train", cell, 3)["metrics"]).exists()
    with open(results / "sequential.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["cell"] == "smooth_label_smoothing0.1" and row["seeds"] == "3" and row["looks"] == "2"
    assert row["stopped"] != "open" and row["decision"] != "collapsed"
    assert "Seeds added until decided" in (results / "report.rst").read_text()
    subprocess.run([sys.executable, "-m", "contrastlab.cli", "status", str(config)], cwd=tmp_path,
                   capture_output=True, env=local_env())
    status = (results / "status.md").read_text()
    assert "## Seeds added until decided" in status and "smooth_label_smoothing0.1 vs baseline | 3 | 2 |" in status
