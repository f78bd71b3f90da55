"""The family contract (contrastlab.plan.contract), over every family in contrastlab.objectives.families.NAMES, so a
new family is tested without being named here: each output's builder, caption and signature, its
outputs built from fake results of every family (a table reports its own cells), the plan's checks
with the culprit named, and a family copied under a new name, end to end: it plans, builds its own
tables with its own code, and stops the plan by name while its output names clash."""
import inspect
import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from contrastlab.objectives import families

from contrastlab.plan import layout
from contrastlab.analysis.aggregate.outputs import COMMON
from contrastlab.analysis.aggregate.run import aggregate
from contrastlab.cli import main
from contrastlab.plan.contract import BUILDER_PARAMS, KINDS, ContractError, Output, check_outputs, resolve
from contrastlab.operations.provenance import PACKAGE, import_closure
from test_aggregate import PNG_MAGIC, base_correct, better, run_of
from workflow_helpers import REPO, copy_workflow, snakemake

DECLARED = [o for f in families.NAMES for o in families.outputs(f)]


@pytest.mark.parametrize("output", DECLARED, ids=[o.name for o in DECLARED])
def test_every_declared_output_has_a_caption_and_a_builder_of_the_one_signature(output):
    assert output.kind in KINDS
    assert Path(output.caption).read_text().strip(), output.caption
    package = families.spec(output.family).__name__
    assert output.module.startswith(package + "."), "a family's builders live in its own package"
    assert Path(output.caption).parent == Path(families.spec(output.family).__file__).parent
    assert tuple(inspect.signature(resolve(output.builder)).parameters) == BUILDER_PARAMS


def test_output_names_are_unique_over_every_family_and_the_aggregate():
    names = [o.name for o in COMMON] + [o.name for o in DECLARED]
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every family's outputs, built from fake results: one cell of each family (its default params,
    better than the baseline); every run of the study is given to every builder."""
    root = tmp_path_factory.mktemp("contract")
    runs = [run_of(root, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1))]
    for f in families.NAMES:
        runs.append(run_of(root, f"{f}_cell", 1, f"{f}_exp", f, {}, {}, better(1)))
    outputs = layout.output_paths(str(root), DECLARED)
    aggregate(runs, outputs, baseline="baseline", analysis={"n_boot": 200}, report=[o.job_param() for o in DECLARED])
    return outputs


@pytest.mark.parametrize("output", DECLARED, ids=[o.name for o in DECLARED])
def test_every_builder_writes_its_files_and_a_table_holds_its_own_cells(built, output):
    if output.kind == "figure":
        data = Path(built[output.name]).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
        return
    for fmt in layout.TABLE_FORMATS:
        assert Path(built[f"{output.name}_{fmt}"]).read_text().strip()
    cells = set(pd.read_csv(built[f"{output.name}_csv"])["cell"])
    assert cells - {"baseline"} == {f"{output.family}_cell"}


def test_the_aggregate_imports_no_family():
    """One way: a family's report imports the aggregate's helpers, never the reverse."""
    for path in sorted((PACKAGE / "analysis" / "aggregate").glob("*.py")):
        module = f"contrastlab.analysis.aggregate.{path.stem}".removesuffix(".__init__")
        assert not [p for p in import_closure(module) if "families" in p.relative_to(PACKAGE).parts], module


def good_output(tmp_path, **changes) -> Output:
    caption = tmp_path / "x.rst"
    caption.write_text("**X.** What it shows.\n")
    fields = dict(name="x", kind="table", title="X", builder="contrastlab.objectives.families.rdrop.report:rdrop",
                  caption=caption, family="rdrop")
    return Output(**{**fields, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"kind": "chart"}, "rdrop: output 'x': kind 'chart' is not one of table, figure"),
    ({"caption": "/nowhere/x.rst"}, "rdrop: output 'x': its caption /nowhere/x.rst is missing or empty"),
    ({"builder": "contrastlab.objectives.families.rdrop.report:nothing"}, "defines no function 'nothing'"),
    ({"builder": "contrastlab.objectives.families.rdrop.nowhere:rdrop"},
     "builder 'contrastlab.objectives.families.rdrop.nowhere:rdrop' is not"),
    # the aggregate's own builders have another call; a family's must have the contract's
    ({"builder": "contrastlab.analysis.aggregate.tables:headline"},
     "builder headline(study, comp) must take (study, comp, cells, paths)"),
])
def test_the_plans_check_names_the_output_and_what_is_wrong(tmp_path, changes, message):
    check_outputs({"rdrop": [good_output(tmp_path)]})
    with pytest.raises(ContractError) as e:
        check_outputs({"rdrop": [good_output(tmp_path, **changes)]})
    assert message in str(e.value)


def test_an_empty_caption_is_refused(tmp_path):
    out = good_output(tmp_path)
    Path(out.caption).write_text("\n  \n")
    with pytest.raises(ContractError, match="is missing or empty"):
        check_outputs({"rdrop": [out]})


def test_contrastlab_check_stops_on_a_broken_contract_in_one_line(monkeypatch, capsys):
    declared = families.outputs
    clash = declared("rdrop")[0]  # token declaring rdrop's table too

    monkeypatch.setattr(families, "outputs",
                        lambda f: declared(f) + ([replace(clash, family=f)] if f == "token" else []))
    assert main(["check", str(REPO / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contract error: output 'rdrop' is declared by both family rdrop and family token")
    assert len(err.strip().splitlines()) == 1


# --- a family copied under a new name, end to end ---------------------------------------------
BUILD_COPY = """
import json, sys
import yaml
from contrastlab.plan import layout
from contrastlab.analysis.aggregate.run import aggregate
from contrastlab.cli import main
from contrastlab.plan.study import plan
from test_aggregate import base_correct, better, run_of, same_accuracy

config, root = sys.argv[1:]
p = plan(yaml.safe_load(open(config)), config)
runs = [run_of(root, c.name, c.seed, c.experiment, c.family, c.sweep, c.config.loss,
               (base_correct if c.family == "baseline" else better if c.sweep["stages"] == 1 else same_accuracy)(1))
        for c in p.cells]
outputs = layout.output_paths(root, p.outputs)
aggregate(runs, outputs, baseline=p.baseline, analysis={"n_boot": 200}, report=[o.job_param() for o in p.outputs if o.family])
print(json.dumps({"builders": {o.name: o.builder for o in p.outputs}, "outputs": outputs}))
"""


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """The workflow with families/rdrop copied to families/rdropcopy, its report's table titled
    "R-Drop copy" (to tell whose code built it), and a config with an experiment of each."""
    work = copy_workflow(tmp_path_factory.mktemp("copied"))
    package = work / "src" / "contrastlab" / "objectives" / "families"
    shutil.copytree(package / "rdrop", package / "rdropcopy", ignore=shutil.ignore_patterns("__pycache__"))
    report = package / "rdropcopy" / "report.py"
    report.write_text(report.read_text().replace('"R-Drop: one- vs two-stage, accuracy and cost"',
                                                 '"R-Drop copy: one- vs two-stage, accuracy and cost"'))
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["experiments"] = {"baseline": {"family": "baseline"},
                          "rdrop": {"sweep": {"stages": [1, 2]}}, "rdropcopy": {"sweep": {"stages": [1, 2]}}}
    config = work / "copy.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return work, config


def test_a_copied_family_with_the_same_output_names_stops_the_plan_naming_both(copied):
    work, config = copied
    out = snakemake(work, config, "-n", check=False)
    assert out.returncode != 0
    assert "contract error: output 'rdrop' is declared by both family rdrop and family rdropcopy" in out.stderr


def test_a_copied_family_under_new_output_names_plans_and_builds_its_own_tables(copied, tmp_path):
    work, config = copied
    init = work / "src" / "contrastlab" / "objectives" / "families" / "rdropcopy" / "__init__.py"
    text = init.read_text()
    init.write_text(text + "\nimport dataclasses\n"  # the same builders and captions, under new output names
                    "OUTPUTS = [dataclasses.replace(o, name=o.name.replace('rdrop', 'rdropcopy', 1)) for o in OUTPUTS]\n")
    try:
        dry = snakemake(work, config, "-n", "--quiet", "rules")
        assert "aggregate" in dry.stdout + dry.stderr
        env = {"PYTHONPATH": f"{work / 'src'}:{REPO / 'tests'}", "PATH": str(Path(sys.executable).parent),
               "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(BUILD_COPY), str(config), str(tmp_path)],
                              capture_output=True, text=True, env=env, cwd=work)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        init.write_text(text)  # the duplicate test shares the copy
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    assert made["builders"]["rdropcopy"] == "contrastlab.objectives.families.rdropcopy.report:rdrop"
    copy_md = Path(made["outputs"]["rdropcopy_md"]).read_text()
    assert copy_md.startswith("# R-Drop copy:")  # built by the copy's code, not rdrop's
    assert Path(made["outputs"]["rdrop_md"]).read_text().startswith("# R-Drop: one-")
    copy_cells = set(pd.read_csv(made["outputs"]["rdropcopy_csv"])["cell"])
    assert copy_cells == {"baseline", "rdropcopy_stages1", "rdropcopy_stages2"}  # its own cells only
    assert set(pd.read_csv(made["outputs"]["rdrop_csv"])["cell"]) == {"baseline", "rdrop_stages1", "rdrop_stages2"}
    assert Path(made["outputs"]["rdropcopy_cost"]).read_bytes()[:8] == PNG_MAGIC
