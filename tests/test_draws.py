"""The train draw and the prepared data it makes (issue 18 item 1; issue 23 item 5, class 4's
prepared key): data.draw_seed separates the few-shot / max_train / label-noise draw from the
split and from the run's seed; each distinct draw is one prepare, in a folder keyed by everything
its content depends on, so two studies in one results folder never overwrite each other's."""
import re

import pytest
import yaml
from data_helpers import files_cfg, frame, write

from contrastlab.plan.config import DataConfig, StudyConfig, validate
from contrastlab.data.splits import load_splits
from contrastlab.plan.grid import expand_grid
from contrastlab.data.preps import plan_preps, resolved_data
from contrastlab.plan.study import plan
from workflow_helpers import snakemake, write_config


def _draw(cfg: DataConfig, seed: int):
    return load_splits(DataConfig.model_validate(resolved_data(cfg, seed)))


def _rows(frames, split):
    return frames[0][split]["row"].tolist()


@pytest.fixture
def few_shot(tmp_path):
    return lambda **kw: files_cfg({"train": write(frame(60), tmp_path / "d.csv")}, few_shot_n=5, label_noise=0.2, **kw)


def test_draw_seed_run_gives_each_seed_its_own_train_draw_and_the_same_val_and_test(few_shot):
    one, two = _draw(few_shot(draw_seed="run"), 1), _draw(few_shot(draw_seed="run"), 2)
    assert sorted(_rows(one, "train")) != sorted(_rows(two, "train"))
    assert one[2]["label_noise"]["rows"] != two[2]["label_noise"]["rows"]  # the noise follows the draw too
    assert _rows(one, "test") == _rows(two, "test") and _rows(one, "val") == _rows(two, "val")
    assert one[0]["test"]["label"].tolist() == two[0]["test"]["label"].tolist()
    assert _rows(one, "train") == _rows(_draw(few_shot(draw_seed="run"), 1), "train")  # seeded


def test_draw_seed_fixed_is_the_split_seed_draw_for_every_run(few_shot):
    fixed = [_draw(few_shot(), seed) for seed in (1, 2)]
    assert _rows(fixed[0], "train") == _rows(fixed[1], "train") == _rows(_draw(few_shot(draw_seed=42), 9), "train")
    other = _draw(few_shot(draw_seed=7), 1)
    assert sorted(_rows(other, "train")) != sorted(_rows(fixed[0], "train"))
    assert _rows(other, "test") == _rows(fixed[0], "test")


def _study(**data):
    return {"data": {"source": "embedded", **data}, "model": {"max_len": 32}, "seeds": [1, 2, 3],
            "experiments": {"baseline": {}, "scl": {}}}


def test_draw_seed_run_plans_one_prepare_per_seed_shared_by_the_cells_of_that_seed():
    p = plan(_study(few_shot_n=8, draw_seed="run"))
    assert len(p.preps) == 3
    for seed in (1, 2, 3):
        key = p.prep_of[("baseline", seed)]
        assert p.prep_of[("scl", seed)] == key and p.preps[key].data["draw_seed"] == seed
        assert f"draw_seed{seed}-" in key
    assert len(plan(_study(few_shot_n=8)).preps) == 1


def test_a_draw_seed_that_changes_nothing_shares_one_prepare(caplog):
    assert len(plan(_study(draw_seed="run")).preps) == 1  # nothing is drawn from train
    assert "nothing is drawn from train" in caplog.text
    fixed, explicit = plan(_study(few_shot_n=8)), plan(_study(few_shot_n=8, draw_seed=42))
    assert list(fixed.preps) == list(explicit.preps)  # fixed means split_seed (42)


def test_a_swept_draw_seed_makes_one_prepare_per_draw():
    study = _study(few_shot_n=8)
    # compare_to matches data exactly, so the reference sweeps the same draws
    study["experiments"]["baseline"] = {"sweep": {"data.draw_seed": [1, 2]}}
    study["experiments"]["scl"] = {"sweep": {"data.draw_seed": [1, 2]}}
    p = plan(study)
    assert len(p.preps) == 2 and p.prep_of[("scl_draw_seed1", 1)] != p.prep_of[("scl_draw_seed2", 1)]
    assert p.prep_of[("scl_draw_seed1", 1)] == p.prep_of[("baseline_draw_seed1", 1)]
    assert p.reference["scl_draw_seed2"] == "baseline_draw_seed2"


def test_two_studies_in_one_results_folder_get_separate_prepared_data():
    a, b = plan(_study(max_train=100)), plan(_study(max_train=200))
    assert a.study.results == b.study.results and set(a.preps).isdisjoint(b.preps)
    again = _study(max_train=100)
    again["experiments"] = dict(reversed(list(again["experiments"].items())))
    assert plan(again).preps.keys() == a.preps.keys()  # same data, same folder, whatever the order


def test_cells_whose_data_differ_in_a_nested_key_get_separate_prepared_data(tmp_path):
    paths = [write(frame(10), tmp_path / f"{n}.csv") for n in ("a", "b")]
    study = {"data": {"source": "files", "files": {"train": paths[0]}}, "model": {"max_len": 32},
             "experiments": {"baseline": {}, "other": {"family": "baseline", "data": {"files": {"train": paths[1]}}}}}
    # the preps alone: plan() refuses to compare cells trained on other files (test_study_inputs.py)
    preps, _ = plan_preps(expand_grid(validate(StudyConfig, study, "t"), "t"), validate(StudyConfig, study, "t").data)
    assert len(preps) == 2 and all(re.fullmatch(r"embedded-len32-[0-9a-f]{10}", k) for k in preps)


def _planned_prepares(workdir, config) -> int:
    out = snakemake(workdir, config, "-n", "--quiet", "rules", "--until", "prepare")
    found = re.search(r"^\s*prepare\s+(\d+)\s*$", out.stdout + out.stderr, flags=re.M)
    return int(found.group(1)) if found else 0


def test_snakemake_runs_one_prepare_per_draw_and_an_unchanged_draw_plans_none(tiny_deberta_dir, tmp_path):
    data = {"source": "embedded", "few_shot_n": 8, "max_eval": 40}
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, data=data, seeds=[1, 2])
    snakemake(tmp_path, config, "--cores", "1", "--until", "prepare")
    assert _planned_prepares(tmp_path, config) == 0
    cfg = yaml.safe_load(config.read_text())
    for edit, prepares in (({"draw_seed": 42}, 0), ({"draw_seed": "run"}, 2), ({"draw_seed": 3}, 1)):
        cfg["data"] = {**data, **edit}
        config.write_text(yaml.safe_dump(cfg))
        assert _planned_prepares(tmp_path, config) == prepares, edit
    cfg["data"] = {**data, "draw_seed": "run"}
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, config, "--cores", "1", "--until", "prepare")
    prepared = sorted((tmp_path / "results" / "prepared").glob("*/labels.json"))
    summaries = [yaml.safe_load(p.read_text()) for p in prepared]
    assert sorted(s["draw_seed"] for s in summaries) == [1, 2, 42]
    tests = {(p.parent / "test.csv").read_text() for p in prepared}
    trains = {(p.parent / "train.csv").read_text() for p in prepared}
    assert len(tests) == 1 and len(trains) == 3  # one test split for every draw, three train draws
