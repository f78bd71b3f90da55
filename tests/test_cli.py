"""The `contrastlab` command: cells, status, rerun of one cell's stage, and the generated config
reference (which must match the code that it documents)."""
import json

import yaml

from contrastlab.cli import REPO, main
from contrastlab.plan.schema import write_reference
from workflow_helpers import write_config


def test_the_config_reference_is_generated_from_the_code_and_current():
    assert write_reference(REPO, check=True) == [], "run: contrastlab schema"
    doc = (REPO / "docs" / "config.md").read_text()
    for key in ("train.precision", "`precision`", "`select`", "`label_noise`", "`reduction`", "`grad_cache`"):
        assert key.strip("`").split(".")[-1] in doc


def test_cells_lists_every_cell_with_its_reference_and_resolved_params(capsys):
    assert main(["cells", str(REPO / "config" / "grid.yaml"), "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    by = {c["cell"]: c for c in cells}
    assert len(cells) == 21 and by["token_alpha0.2_k4"]["compared_with"] == "lora"
    assert by["token_alpha0.2_k4"]["config"]["loss"]["k"] == 4 and by["baseline"]["compared_with"] == "baseline"


def test_rerun_trains_one_cell_outside_snakemake_into_its_usual_files(tiny_deberta_dir, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, **{"results": str(tmp_path / "results"),
                                                                        "experiments": {"baseline": {}}})
    monkeypatch.chdir(tmp_path)
    from contrastlab.plan import layout
    from contrastlab.plan.config import DataConfig
    from contrastlab.data.splits import prepare
    from contrastlab.training.model import load_tokenizer
    from contrastlab.plan.study import plan

    prep = next(iter(plan(yaml.safe_load(config.read_text())).preps.values()))  # where the rerun looks
    prepare(DataConfig.model_validate(prep.data), load_tokenizer(prep.tokenizer), prep.max_len,
            tmp_path / layout.prepared_dir("results", prep.key))
    assert main(["rerun", str(config), "baseline"]) == 0
    metrics = tmp_path / layout.stage_files("results", "train", "baseline", 1)["metrics"]
    assert json.loads(metrics.read_text())["steps"] == 5
    assert main(["status", str(config)]) == 0
    assert "| baseline | 1 | not run | embed |  | 1 |" in capsys.readouterr().out  # trained, not yet embedded
