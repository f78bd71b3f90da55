"""The paper preset (DeBERTa-v3-base, IMDB, the reference grid, 3 seeds) builds its DAG without
the hub: every cell x seed gets its train -> embed -> probe -> plot chain, one GPU each."""
from workflow_helpers import REPO, planned_jobs, snakemake

PAPER = REPO / "config" / "paper.yaml"
# baseline 1, rdrop 2, scl 2 + nonorm 1 + gunel 1, lora 1, token 3x2, cluster 3, multilayer 6x2, focal 3, simcse 1
CELLS = 1 + 2 + 4 + 1 + 6 + 3 + 12 + 3 + 1


def test_paper_preset_dry_run_expands_the_reference_grid_for_three_seeds(tmp_path):
    jobs = planned_jobs(tmp_path, PAPER)
    n = CELLS * 3
    assert jobs == {"prepare": 2, "train": n, "embed": n, "probe": n, "plot": n, "aggregate": 1}


def test_paper_preset_training_jobs_request_one_gpu(tmp_path):
    out = snakemake(tmp_path, PAPER, "-n", "--forcerun", "train", "--until", "train")
    text = out.stdout + out.stderr
    train_blocks = [b for b in text.split("\n\n") if "rule train:" in b]
    assert len(train_blocks) == CELLS * 3
    assert all("gpu=1" in b for b in train_blocks)
