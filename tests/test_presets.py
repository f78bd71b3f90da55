"""The shipped presets: each is a whole study by itself, and every cell of each trains what its
name says: no contrastive term reads a layer that gets no gradient. The paper preset (DeBERTa-v3-
base, IMDB, the reference grid, 3 seeds) builds its DAG without the hub."""
import json

import pytest
import yaml

from contrastlab.objectives import families
from contrastlab.cli import read_config
from contrastlab.plan.config import ConfigError
from contrastlab.plan.hfconfig import model_info
from contrastlab.objectives.layers import frozen_reads
from contrastlab.plan.study import plan
from workflow_helpers import REPO, planned_jobs, snakemake

PAPER = REPO / "config" / "paper.yaml"
PRESETS = [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]
# baseline 1, rdrop 1 + two-stage 1 + its compute-matched CE 1, scl 2 + nonorm 1 + gunel 1, lora 1, token 3x2,
# cluster 3, lora256 1, multilayer 6x2, focal 3, simcse 1
PAPER_CELLS = 1 + 3 + 4 + 1 + 6 + 3 + 1 + 12 + 3 + 1
# microsoft/deberta-v3-base's config.json, as the hub serves it (what the DAG build reads of a model)
DEBERTA_V3_BASE = {"model_type": "deberta-v2", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "intermediate_size": 3072, "max_position_embeddings": 512, "relative_attention": True,
                   "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": True,
                   "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7, "max_relative_positions": -1,
                   "position_biased_input": False, "vocab_size": 128100, "type_vocab_size": 0}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding deberta-v3-base's config.json only (no weights, no network)."""
    snap = tmp_path / "hub" / "models--microsoft--deberta-v3-base"
    (snap / "snapshots" / "0").mkdir(parents=True)
    (snap / "snapshots" / "0" / "config.json").write_text(json.dumps(DEBERTA_V3_BASE))
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_paper_preset_dry_run_expands_the_reference_grid_for_three_seeds(tmp_path):
    jobs = planned_jobs(tmp_path, PAPER)
    n = PAPER_CELLS * 3
    assert jobs == {"prepare": 2, "train": n, "embed": n, "probe": n, "plot": n, "aggregate": 1}


def test_paper_preset_training_jobs_request_one_gpu(tmp_path):
    out = snakemake(tmp_path, PAPER, "-n", "--forcerun", "train", "--until", "train")
    train_blocks = [b for b in (out.stdout + out.stderr).split("\n\n") if "rule train:" in b]
    assert len(train_blocks) == PAPER_CELLS * 3
    assert all("gpu=1" in b for b in train_blocks)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_contrastive_term_of_every_shipped_preset_reads_a_layer_that_trains(preset, hub_cache):
    p = plan(read_config(preset), str(preset))  # the DAG build's own check passes ...
    checked = 0
    for cell in p.cells:  # ... and, stated here directly, every term reads trained layers
        info = model_info(cell.config.model.name)
        assert info.num_layers is not None, f"{preset.name}: the test needs {cell.config.model.name}'s config"
        m = cell.config.model
        layers = families.parse_params(cell.family, cell.config.loss).contrast_layers()
        assert frozen_reads(layers, info.num_layers, m.trainable_layers, m.lora is not None) == [], cell.name
        checked += bool(layers)
    assert checked > 0 or {c.family for c in p.cells} == {"baseline"}


def test_the_paper_multilayer_cells_train_on_lora_and_are_compared_with_the_same_lora(hub_cache):
    p = plan(read_config(PAPER), str(PAPER))
    ml = [c for c in p.cells if c.family == "multilayer"]
    assert len(ml) == 12 * 3 and all(c.config.model.lora is not None for c in ml)
    assert {p.reference[c.name] for c in ml} == {"lora256"}
    lora256 = next(c for c in p.cells if c.name == "lora256")
    assert all(c.config.model == lora256.config.model for c in ml)  # same encoder, adapters and max_len


def test_the_old_paper_multilayer_cells_on_frozen_layers_are_stopped_naming_them(hub_cache):
    cfg = read_config(PAPER)
    cfg["experiments"]["multilayer"].pop("model")
    cfg["experiments"]["multilayer"].pop("compare_to")
    with pytest.raises(ConfigError, match=r"cell multilayer_layers0-1-2-3_leveltoken: the contrastive term reads "
                                          r"encoder layer\(s\) \[0, 1, 2, 3\], but only layers 8\.\.11 train"):
        plan(cfg, "paper.yaml")


def test_the_reference_layer_numbers_are_read_as_encoder_layers_throughout(hub_cache):
    cfg = read_config(PAPER)
    assert cfg["experiments"]["scl"]["loss"]["layer"] == 8  # the reference's "layer 8"
    sets = cfg["experiments"]["multilayer"]["sweep"]["layers"]
    assert [11] in sets and max(max(s) for s in sets) == 11  # {11}: the last of 12 layers, 0-based
    assert "Layer numbers" in PAPER.read_text()


def test_presets_are_independent_of_each_other(tmp_path):
    for preset in PRESETS:
        cfg = yaml.safe_load(preset.read_text())
        assert {"data", "experiments"} <= set(cfg), preset.name  # what a config must state itself


def test_on_the_slurm_profile_each_paper_cell_is_two_submissions(tmp_path):
    out = snakemake(tmp_path, PAPER, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    text = out.stdout + out.stderr
    n = PAPER_CELLS * 3
    assert text.count("Group job gpu") == n and text.count("Group job cpu") == n  # train+embed, probe+plot
    jobs = planned_jobs(tmp_path, PAPER)
    submissions = jobs["prepare"] + 2 * n + jobs["aggregate"]
    assert submissions == 213 and sum(jobs.values()) == 2 + 4 * n + 1  # 423 jobs in 213 submissions


def test_gunel_preset_compares_each_scl_cell_with_the_ce_cell_of_the_same_size_and_noise():
    p = plan(read_config(REPO / "config" / "gunel.yaml"), "gunel.yaml")
    assert len(p.study.seeds) >= 5 and len(p.cells) == 10 * len(p.study.seeds)
    ref = p.reference
    assert [ref[f"scl_few_shot_n{n}"] for n in (20, 100, 1000)] == [f"ce_few_shot_n{n}" for n in (20, 100, 1000)]
    assert ref["scl_noisy_label_noise0.4"] == "ce_noisy_label_noise0.4"
    assert ref["ce_noisy_label_noise0.2"] == "ce_few_shot_n100"  # noise against no noise, at the same N
    assert len(p.preps) == 5  # a prepared dataset per N and noise level
    cells = {c.name: c.config for c in p.cells}
    assert cells["scl_noisy_label_noise0.2"].data.few_shot_n == 100 and cells["scl_noisy_label_noise0.2"].data.label_noise == 0.2
