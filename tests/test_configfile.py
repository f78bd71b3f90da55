"""Reading a config file (issue 23, item 5, class 8): a key written twice stops `contrastlab check`
and the DAG build, naming the file, the line and the key; YAML's unquoted yes/no/on/off where a
name is expected says to quote it."""
import pytest

from contrastlab.cli import main as cli
from contrastlab.plan.config import ConfigError
from contrastlab.plan.configfile import read_config
from workflow_helpers import snakemake, write_config

TWICE = {
    "experiments_block": ("data: {source: embedded}\nexperiments:\n  baseline: {}\n  scl: {}\n"
                          "seeds: [1]\nexperiments:\n  baseline: {}\n", 6, "experiments", 2),
    "experiment": ("data: {source: embedded}\nexperiments:\n  baseline: {}\n  scl: {}\n"
                   "  scl: {loss: {alpha: 0.5}}\n", 5, "scl", 4),
    "nested_key": ("data: {source: embedded}\nexperiments:\n  scl:\n    loss: {alpha: 0.1, alpha: 0.5}\n",
                   4, "alpha", 4),
}


@pytest.mark.parametrize("case", list(TWICE))
def test_a_key_written_twice_is_an_error_naming_the_file_line_and_key(tmp_path, case):
    text, line, key, first = TWICE[case]
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_config(path)
    assert str(err.value).startswith(f"{path}, line {line}, column ") and f"the key {key!r} is written twice" in \
        str(err.value) and f"first on line {first}" in str(err.value), err.value


def test_check_stops_on_a_second_experiments_block(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(TWICE["experiments_block"][0])
    assert cli(["check", str(path)]) == 2
    assert f"{path}, line 6" in capsys.readouterr().err


def test_the_dag_build_stops_on_a_key_written_twice_in_its_config_file(tiny_deberta_dir, tmp_path):
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir)
    text = config.read_text()
    config.write_text(text + "experiments:\n  baseline: {family: baseline}\n")  # Snakemake's loader keeps this one
    n = text.count("\n") + 1
    out = snakemake(tmp_path, config, "-n", check=False)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("config error")]
    assert out.returncode != 0 and not (tmp_path / "results").exists()
    assert lines and lines[0].startswith(f"config error: {config}, line {n}, column 1: not valid YAML: the key "
                                         "'experiments' is written twice"), out.stdout + out.stderr


@pytest.mark.parametrize("text, key", [("data: {labels: [yes, no]}", "data.labels[0] = True"),
                                       ("data: {label_column: no}", "data.label_column = False"),
                                       ("data: {}\nbaseline: on", "baseline = True")])
def test_yaml_booleans_where_a_name_is_expected_say_to_quote_them(tmp_path, capsys, text, key):
    path = tmp_path / "study.yaml"
    path.write_text(text + "\nexperiments: {baseline: {}}\n")
    assert cli(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: must be text (YAML reads unquoted yes, no, on, off, true and false as booleans: quote" in err, err


def test_an_experiment_named_by_a_yaml_boolean_says_to_quote_it(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text("data: {}\nexperiments: {baseline: {}, off: {family: baseline}}\n")
    assert cli(["check", str(path)]) == 2
    assert "experiments: the key False must be text (YAML reads unquoted" in capsys.readouterr().err
