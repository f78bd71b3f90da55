"""A researcher's own study: a config file is the whole study, and every mistake in it stops the
DAG build (or, where only the job can know, the job) in one line that names the file, the key
path or row, the bad value and what is allowed. One test per class of defect."""
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from contrastlab.cli import main as cli
from contrastlab.cli import read_config
from contrastlab.plan.config import ConfigError, TrainConfig
from contrastlab.plan.study import plan
from workflow_helpers import REPO, copy_workflow, local_env, planned_cells, planned_jobs, set_key, snakemake, write_config


@pytest.fixture(scope="module")
def own_csv(tmp_path_factory):
    """A three-class CSV of one's own, with its own column names."""
    d = tmp_path_factory.mktemp("own")
    rows = [{"body": f"{c} article number {i} about {c} things", "topic": c}
            for i in range(60) for c in ("sport", "politics", "science")]
    pd.DataFrame(rows).to_csv(d / "news.csv", index=False)
    return d / "news.csv"


def own(csv, model="embedded", **more):
    cfg = {"data": {"source": "files", "files": {"train": str(csv)}, "text_column": "body", "label_column": "topic"},
           "model": {"name": model, "max_len": 32},
           "experiments": {"baseline": {}, "scl": {"loss": {"alpha": 0.1}}}}
    for key, value in more.items():
        set_key(cfg, key, value)
    return cfg


def error_of(cfg, source="my.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        plan(cfg, source)
    text = str(e.value)
    assert text.startswith(f"{source}: ") and "\n" not in text, text
    return text


# ---- 1. a config file is self-contained ---------------------------------------------------------

def test_a_two_experiment_config_plans_exactly_its_two_cells(own_csv, tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(own(own_csv)))
    assert planned_cells(tmp_path, path) == ["cell=baseline, seed=1", "cell=scl, seed=1"]


def test_every_section_but_data_and_experiments_is_optional_with_the_documented_defaults(own_csv):
    p = plan(own(own_csv), "my.yaml")
    assert p.study.train.epochs == 3 and p.study.runtime.threads == 2 and p.study.seeds == [1]
    assert "data: required" in error_of({"experiments": {"baseline": {}}})
    assert "experiments: empty; it needs at least one entry" in error_of({**own(own_csv), "experiments": {}})


def test_adding_an_experiment_to_config_yaml_leaves_the_paper_preset_unchanged(tmp_path):
    before = planned_cells(tmp_path / "a", REPO / "config" / "paper.yaml")
    workdir = copy_workflow(tmp_path / "b")
    default = yaml.safe_load((workdir / "config.yaml").read_text())
    default["experiments"]["extra"] = {"family": "baseline", "sweep": {"label_smoothing": [0.1, 0.2]}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(default, sort_keys=False))
    after = planned_cells(workdir, workdir / "config" / "paper.yaml")
    assert after == before and len(before) == 3 * 35
    assert not any("extra" in c for c in after)
    assert sum("extra" in c for c in planned_cells(workdir, None)) == 2 * 3  # config.yaml (3 seeds) did gain it


# ---- 2. checks that need the model run at DAG build, from its config.json -------------------------

@pytest.mark.parametrize("override, message", [
    ({"experiments.scl.loss": {"views": "multi", "layer": 10}}, "loss layer 10: layer 10 is out of range for an encoder with 6 layers"),
    ({"experiments.scl.loss": {"views": "multi", "layer": -7}}, "layer -7 is out of range for an encoder with 6 layers"),
    ({"experiments.scl.loss": {"layer": 10}}, "loss layer 10: layer 10 is out of range"),  # views "one" ignores it
    ({"experiments.ml": {"family": "multilayer", "sweep": {"layers": [[4, 5], [4, 6]]}}},
     "cell ml_layers4-6: loss layer 6: layer 6 is out of range"),
    ({"model.max_len": 600}, "model.max_len = 600, but embedded has position embeddings for 512 tokens"),
    ({"model.trainable_layers": 7}, "model.trainable_layers = 7, but embedded has 6 encoder layers"),
    ({"experiments.cl": {"family": "cluster", "model": {"lora": {}}, "loss": {"k": 8, "n_clusters": 9}}},
     "loss.n_clusters = 9 is more than loss.k = 8"),
    ({"experiments.tok": {"family": "token", "loss": {"k": 8.5}}}, "experiments.tok.loss.k = 8.5: must be an integer"),
    ({"experiments.ml": {"family": "multilayer", "loss": {"layers": [0, 1]}}},
     "the contrastive term reads encoder layer(s) [0, 1], but only layers 2..5 train (model.trainable_layers = 4 of 6)"),
])
def test_a_config_that_does_not_fit_the_model_stops_at_dag_build(own_csv, override, message):
    assert message in error_of(own(own_csv, **override))


def test_a_layer_that_views_one_ignores_passes_when_the_model_has_it(own_csv):
    cfg = own(own_csv, **{"experiments.scl.sweep": {"views": ["one", "multi"]}, "experiments.scl.loss": {"layer": 3}})
    assert {"scl_viewsone", "scl_viewsmulti"} <= set(plan(cfg, "my.yaml").cell_names())


def test_a_default_layer_is_checked_only_where_the_cell_reads_it(own_csv, tiny_deberta_dir, tmp_path):
    two = tmp_path / "two_layers"  # the model check reads config.json only
    two.mkdir()
    config = json.loads((tiny_deberta_dir / "config.json").read_text())
    (two / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    cfg = own(own_csv, model=str(two), **{"model.trainable_layers": 2})
    assert "scl" in plan(cfg, "my.yaml").cell_names()  # scl's default layer -4: views "one" does not read it
    cfg["experiments"]["scl"]["loss"]["views"] = "multi"
    assert "cell scl: loss layer -4: layer -4 is out of range for an encoder with 2 layers" in error_of(cfg)


def test_the_frozen_layer_check_is_lifted_by_lora_which_adapts_every_layer(own_csv):
    cfg = own(own_csv, **{"experiments.ml": {"family": "multilayer", "loss": {"layers": [0, 1]}, "model": {"lora": {}}}})
    assert "ml" in plan(cfg, "my.yaml").cell_names()


# ---- 3. wrong types are named, never coerced ------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ({"experiments.scl.loss": {"normalize": "false"}},
     "experiments.scl.loss.normalize = 'false': must be true or false (write true or false without quotes)"),
    ({"experiments.scl.loss": {"tau": "0.3"}},
     "experiments.scl.loss.tau = '0.3': must be a number (it is quoted, so YAML reads it as text"),
    ({"train.lr_top": "1e-4"}, "train.lr_top = '1e-4': must be a number (YAML reads 1e-4 as text: write it with a dot"),
    ({"train.epochs": "three"}, "train.epochs = 'three': must be an integer"),
    ({"train.precision": "fp64"}, "train.precision = 'fp64': must be one of 'auto', 'fp32', 'bf16' or 'fp16'"),
    ({"train.lr_haed": 1e-3}, "train.lr_haed: unknown key; did you mean lr_head?"),
    ({"experiments.scl.train": {"lr_haed": 1e-3}}, "experiments.scl.train.lr_haed: unknown key"),
    ({"experiments.scl.sweep": {"train.lr_haed": [1e-3]}}, "experiments.scl.sweep.train.lr_haed: unknown key"),
])
def test_wrong_types_and_unknown_keys_are_named(own_csv, override, message):
    assert message in error_of(own(own_csv, **override))


# ---- 4. paths and sources are checked when the DAG is built ---------------------------------------

@pytest.mark.parametrize("override, message", [
    ({"model.name": "./models/mine"}, "model.name './models/mine': no such directory"),
    ({"model.name": "my models/x"}, "neither 'embedded', a local directory (it does not exist) nor a Hugging Face hub id"),
    ({"data.files": {"training": "x.csv"}}, "data.files: unknown key 'training' (allowed: 'train', 'val'"),
    ({"data.files": {"train": "/nonexistent/news.csv"}}, "data.files.train = '/nonexistent/news.csv': no such file"),
    ({"data.source": "hub"}, "source 'hub' needs data.name"),
])
def test_paths_and_sources_are_checked_at_dag_build(own_csv, override, message):
    assert message in error_of(own(own_csv, **override))


def test_an_offline_hub_dataset_fails_in_its_job_with_one_line_that_says_what_to_do(monkeypatch):
    from contrastlab.plan.config import DataConfig
    from contrastlab.data.splits import DataError, load_splits

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(source="hub", name="contrastlab-test/no-such-dataset"))
    text = str(e.value)
    assert "HF_HUB_OFFLINE=1 and it is not in the local cache" in text and "datasets.load_dataset(" in text
    assert "\n" not in text


def test_an_offline_hub_model_fails_in_its_job_with_one_line_that_says_what_to_do():
    from contrastlab.plan.config import ModelConfig
    from contrastlab.training.model import build_classifier, load_tokenizer

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: the tests never reach the hub
    for load in (lambda: load_tokenizer("contrastlab-test/no-such-model"),
                 lambda: build_classifier(ModelConfig(name="contrastlab-test/no-such-model"), 2)):
        with pytest.raises(ConfigError) as e:
            load()
        text = str(e.value)
        assert text.startswith("model.name 'contrastlab-test/no-such-model' cannot be loaded: HF_HUB_OFFLINE=1 and it "
                               "is not in the local cache. Download it once") and "\n" not in text


# ---- 5. messages locate the problem, in a line or two ----------------------------------------------

def test_yaml_syntax_errors_and_empty_files_name_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: embedded\n  max_train: [1, 2\nexperiments: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 4, column \d+: not valid YAML: expected ',' or ']'"):
        read_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert cli(["check", str(empty)]) == 2
    assert "empty.yaml: the file is empty" in capsys.readouterr().err


def test_a_schema_error_stops_snakemake_in_one_line_without_dumping_the_schema(tiny_deberta_dir, tmp_path):
    config = write_config(tmp_path / "bad.yaml", tiny_deberta_dir, **{"train.learning_rate": 1e-3})
    out = snakemake(tmp_path, config, "-n", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and not (tmp_path / "results").exists()
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("Using workflow specific profile")]
    known = ", ".join(TrainConfig.model_fields)  # every key of the section, in the order config.py declares them
    assert lines == [f"config error: {config}: train.learning_rate: unknown key (known: {known})"], text


def test_a_data_error_in_prepare_reaches_the_terminal_once_without_a_traceback(tiny_deberta_dir, tmp_path):
    csv = tmp_path / "news.csv"
    csv.write_text("text,label\n")  # a header and no rows
    config = write_config(tmp_path / "my.yaml", tiny_deberta_dir,
                          **{"data": {"source": "files", "files": {"train": str(csv)}}})
    out = snakemake(tmp_path, config, "--cores", "1", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "FAILED [bad_data]" in text and f"{csv}: no data rows (only a header)" in text
    assert "Traceback" not in text and "IndexError" not in text
    assert text.count("no data rows") <= 2, text  # the job's line, and Snakemake's copy of its log


def test_the_config_key_paths_of_a_repeated_sweep_value_name_the_experiment_and_cell(own_csv):
    msg = error_of(own(own_csv, **{"experiments.scl.sweep": {"tau": [0.1, 0.1]}}))
    assert "experiments.scl.sweep.tau: the value 0.1 is listed twice" in msg and "scl_tau0.1" in msg


@pytest.mark.parametrize("override, message", [
    ({"seeds": [1, 2, 1]}, "seeds: seed 1 is listed twice"),
    ({"experiments.scl.sweep": {"family": ["scl", "baseline"]}}, "experiments.scl.sweep.family: a family cannot be swept"),
    ({"experiments.scl.sweep": {"model.max_len.x": [1]}}, "experiments.scl.sweep.model.max_len.x: model.max_len is 32, "
                                                          "not a mapping"),
    ({"runtime.device": "tpu"}, "runtime.device = 'tpu': must be auto, cpu, cuda or cuda:N"),
    ({"train.micro_batch": 64}, "micro_batch = 64: must be auto or 1 to the step's batch_size x grad_accum = 32"),
    ({"experiments.scl.train": {"micro_batch": 8, "contrast_set": "micro_batch"}},
     "micro_batch = 8: must be auto under contrast_set micro_batch"),
    ({"train.micro_batch": "16"}, "train.micro_batch: must be auto or an integer, got '16' (it is quoted"),
    ({"runtime.jobs_per_gpu": 4, "runtime.gpus": 2}, "jobs_per_gpu = 4 needs gpus <= 1"),
])
def test_repeated_or_impossible_grid_keys_are_named(own_csv, override, message):
    assert message in error_of(own(own_csv, **override))


def test_sweeping_a_key_of_an_optional_section_that_is_off_turns_it_on(own_csv):
    cells = {c.name: c.config for c in plan(own(own_csv, **{"experiments.scl.sweep": {"model.lora.r": [4, 8]}}),
                                            "my.yaml").cells}
    assert cells["scl_r4"].model.lora.r == 4 and cells["scl_r8"].model.lora.r == 8
    assert cells["baseline"].model.lora is None


def test_check_command_summarises_a_good_config(own_csv, tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(own(own_csv)))
    assert cli(["check", str(path)]) == 0
    assert re.search(r"OK: 2 cells x 1 seed\(s\) = 2 runs", capsys.readouterr().out)


def test_the_readmes_own_study_section_runs_as_written_through_prepare(tmp_path):
    """The README's commands, literally: make the CSV, check my.yaml, then the workflow up to its
    first job (training it all is the three-class test below, on the tiny model)."""
    section = (REPO / "README.md").read_text().split("## Your own study", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    (setup, run), config = [b for k, b in blocks if k == "bash"][:2], next(b for k, b in blocks if k == "yaml")
    make_csv = next(c for c in setup.replace("\\\n", " ").splitlines() if c.startswith("python "))
    subprocess.run(make_csv.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=tmp_path, check=True)
    (tmp_path / "my.yaml").write_text(config)
    check, workflow = [c.split("#")[0].split() for c in run.strip().splitlines()]
    assert check == ["contrastlab", "check", "my.yaml"]
    subprocess.run([sys.executable, "-m", "contrastlab.cli", *check[1:]], cwd=tmp_path, check=True,
                   env=local_env())
    assert workflow[:3] == ["snakemake", "--configfile", "my.yaml"]
    snakemake(tmp_path, tmp_path / "my.yaml", *workflow[3:], "--until", "prepare")
    summary = json.loads(next((tmp_path / "results" / "my_study" / "prepared").glob("*/labels.json")).read_text())
    assert summary["names"] == ["fresh", "plot", "rotten"] and summary["overlap"]["train_test"] == 0


def test_a_three_class_study_of_ones_own_runs_end_to_end(own_csv, tiny_deberta_dir, tmp_path):
    cfg = own(own_csv, model=str(tiny_deberta_dir), **{
        "train": {"epochs": 1, "batch_size": 16, "grad_accum": 1, "lr_top": 1e-3, "lr_head": 1e-3},
        "runtime": {"device": "cpu", "threads": 1}, "probe": {"max_samples": 60, "folds": 3, "tsne_perplexity": 10}})
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, path, "--cores", "2")
    table = pd.read_csv(tmp_path / "results/tables/headline.csv")
    assert table["cell"].tolist() == ["baseline", "scl"] and table["accuracy_mean"].between(0, 1).all()
    labels = yaml.safe_load(next((tmp_path / "results/prepared").iterdir()).joinpath("labels.json").read_text())
    assert labels["names"] == ["politics", "science", "sport"]
    assert planned_jobs(tmp_path, path) == {}
