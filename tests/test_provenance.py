"""Code provenance is derived from what a stage imports: the closure (in every import form the
package uses, and the modules a job imports by name), one hash function, and what an edit changes:
code does, prose and config defaults (which reach a job in its resolved config) do not. (Rerunning
the right cells on a finished study: tests/test_workflow.py.)"""
import shutil

import pytest

from contrastlab.objectives import families

from contrastlab.operations import provenance
from contrastlab.operations.provenance import PACKAGE, code_hash, import_closure
from contrastlab.plan.study import aggregate_modules, report_outputs

REPO = PACKAGE.parent.parent
SCRIPTS = REPO / "workflow" / "scripts"


def names(paths):
    return {p.relative_to(PACKAGE).as_posix() for p in paths}


def test_a_families_closure_holds_what_it_imports_and_nothing_of_the_other_families():
    token = names(import_closure(families.objective_module("token")))
    assert {"objectives/families/token/objective.py", "objectives/families/token/__init__.py", "objectives/views.py", "objectives/attention.py",
            "objectives/contrastive.py", "objectives/losses.py", "objectives/layers.py"} <= token
    assert not any(n.startswith(("objectives/families/scl", "objectives/families/rdrop", "objectives/families/cluster")) for n in token)
    baseline = names(import_closure(families.objective_module("baseline")))
    assert "objectives/losses.py" not in baseline and "objectives/views.py" not in baseline  # what CE alone does not use


def test_the_training_scripts_closure_does_not_pull_in_any_family():
    train = names(import_closure(SCRIPTS / "train.py"))
    assert {"training/train.py", "training/optim.py", "training/model.py", "plan/config.py", "training/checkpoint.py", "objectives/families/__init__.py"} <= train
    assert not any(n.startswith("objectives/families/") and n != "objectives/families/__init__.py" for n in train)
    assert "analysis/aggregate/tables.py" not in train and "analysis/probe.py" not in train


def test_the_dag_build_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = ("import sys, yaml; from contrastlab.plan.study import plan; "
            "plan(yaml.safe_load(open('config.yaml')), 'config.yaml'); "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package that the hash functions read instead of the real one."""
    copy = tmp_path / "contrastlab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", copy)
    provenance.clear_caches()
    yield copy
    provenance.clear_caches()


def test_an_edit_changes_exactly_the_hashes_of_the_stages_that_import_it(package_copy):
    entries = {f: families.objective_module(f) for f in families.NAMES}
    before = {f: code_hash(m) for f, m in entries.items()}
    (package_copy / "objectives/attention.py").write_text((package_copy / "objectives/attention.py").read_text() + "\nEDITED = 1\n")
    provenance.clear_caches()
    after = {f: code_hash(m) for f, m in entries.items()}
    changed = {f for f in entries if before[f] != after[f]}
    # every family whose views come from contrastlab.objectives.views (which captures attention rows)
    assert changed == {"token", "cluster", "multilayer", "scl", "focal", "simcse"}


def test_docstrings_comments_and_formatting_do_not_change_a_hash(package_copy):
    before = code_hash("contrastlab.training.train")
    path = package_copy / "training/train.py"
    text = path.read_text().replace('"""`train(cfg,', '"""Reworded. `train(cfg,', 1)
    path.write_text(text.replace("\n\n\ndef ", "\n\n\n# a comment\ndef ", 1) + "\n\n# trailing\n")
    provenance.clear_caches()
    assert code_hash("contrastlab.training.train") == before
    path.write_text(text.replace("CHECKPOINT_EVERY_S = 30.0", "CHECKPOINT_EVERY_S = 31.0"))
    provenance.clear_caches()
    assert code_hash("contrastlab.training.train") != before


def test_there_is_one_code_hash_function():
    import contrastlab

    sources = [p.read_text() for p in PACKAGE.rglob("*.py")]
    assert sum("hashlib.sha256" in s and "read_text" in s and "def code_hash" in s for s in sources) == 1
    assert not hasattr(contrastlab, "STAGE_FILES")


def stage_hashes(plan_families=("baseline", "rdrop", "token")) -> dict[str, str]:
    """The code param of every rule, as workflow/rules/common.smk computes it (one per family for
    train; the aggregate of a study with these families)."""
    hashes = {s: code_hash(SCRIPTS / f"{s}.py") for s in ("prepare", "embed", "probe", "plot")}
    hashes.update({f"train:{f}": code_hash(SCRIPTS / "train.py", families.objective_module(f)) for f in families.NAMES})
    hashes["aggregate"] = code_hash(SCRIPTS / "aggregate.py",
                                    *aggregate_modules(plan_families, report_outputs(plan_families)))
    return hashes


def edit(package_copy, module: str, old: str | None, new: str) -> None:
    """Replace `old` (once, and it must be there) with `new` in a module of the copy; append if old is None."""
    path = package_copy / module
    text = path.read_text()
    assert old is None or old in text, f"{old!r} not in {module}"
    path.write_text(text + new if old is None else text.replace(old, new, 1))
    provenance.clear_caches()


# Each form of import the package uses, written into a module a stage imports (training/train.py for
# the training job; analysis/aggregate/run.py, a sub-package's, for `from ..`), of a new module
# "target" in the folder the import resolves to.
IMPORT_FORMS = {
    "import a.b": ("training/train.py", "\nimport contrastlab.target\n", "train:baseline", ""),
    "from a import b": ("training/train.py", "\nfrom contrastlab import target\n", "train:baseline", ""),
    "from . import x": ("training/train.py", "\nfrom . import target\n", "train:baseline", "training"),
    "from .x import y": ("training/train.py", "\nfrom .target import VALUE\n", "train:baseline", "training"),
    "from .. import x": ("analysis/aggregate/run.py", "\nfrom .. import target\n", "aggregate", "analysis"),
    "from . import x (sub-package)": ("analysis/aggregate/run.py", "\nfrom . import target\n", "aggregate",
                                      "analysis/aggregate"),
    "lazy, in a function": ("training/train.py", "\ndef _lazy():\n    from . import target\n", "train:baseline",
                            "training"),
}


@pytest.mark.parametrize("form", IMPORT_FORMS)
def test_editing_a_module_changes_the_hash_of_a_stage_that_imports_it_in_any_form(package_copy, form):
    importer, line, stage, where = IMPORT_FORMS[form]
    folder = package_copy / where
    (folder / "target.py").write_text("VALUE = 1\n")
    edit(package_copy, importer, None, line)
    before = stage_hashes()[stage]
    edit(package_copy, str((folder / "target.py").relative_to(package_copy)), "VALUE = 1", "VALUE = 2")
    assert stage_hashes()[stage] != before


@pytest.mark.parametrize("module, stages", [
    # imported as `from . import figures, tables` by aggregate/run.py
    ("analysis/aggregate/figures.py", {"aggregate"}),
    ("analysis/aggregate/tables.py", {"aggregate"}),
    # imported by name (importlib): a family's objective by the training job, its package and
    # report module by the aggregate, even a family's without a report module (baseline)
    ("objectives/families/rdrop/objective.py", {"train:rdrop"}),
    ("objectives/families/token/report.py", {"aggregate"}),
    ("objectives/families/rdrop/__init__.py", {"train:rdrop", "aggregate"}),
    ("objectives/families/baseline/__init__.py", {"train:baseline", "aggregate"}),
])
def test_an_edit_changes_the_hash_of_every_stage_that_uses_the_module_and_only_those(package_copy, module, stages):
    before = stage_hashes()
    edit(package_copy, module, None, "\nEDITED = 1\n")
    after = stage_hashes()
    assert {s for s in before if before[s] != after[s]} == stages


def test_a_family_package_brings_in_its_parents_when_imported_by_name():
    closure = names(import_closure(*aggregate_modules(["baseline"], [])))  # baseline has no report module
    assert {"__init__.py", "objectives/families/__init__.py", "objectives/families/baseline/__init__.py"} <= closure


def test_the_aggregates_hash_holds_every_builder_module_it_imports_by_name():
    closure = names(import_closure(SCRIPTS / "aggregate.py", *aggregate_modules(families.NAMES,
                                                                                report_outputs(families.NAMES))))
    assert {"analysis/aggregate/tables.py", "analysis/aggregate/figures.py"} <= closure  # the builders of every study's outputs
    for family in families.NAMES:
        for o in families.outputs(family):
            assert names(import_closure(o.module)) <= closure, o.builder


@pytest.mark.parametrize("module, old, new", [
    ("plan/config.py", 'description="passes over the train split"', 'description="passes over the training split"'),
    ("objectives/families/rdrop/__init__.py", 'description="weight of the symmetric KL"', 'description="weight of the KL"'),
    ("cli.py", 'help="the config file (as given to snakemake --configfile)"', 'help="the config file"'),
    # a default reaches each job in its resolved config (a param): the cells it changes rerun by that
    ("plan/config.py", "epochs: int = Field(3, ge=1,", "epochs: int = Field(4, ge=1,"),
    ("objectives/families/rdrop/__init__.py", 'Field("batchmean",', 'Field("sum",'),
])
def test_prose_and_config_defaults_do_not_change_any_hash(package_copy, module, old, new):
    before = {**stage_hashes(), "cli": code_hash("contrastlab.cli")}
    edit(package_copy, module, old, new)
    assert {**stage_hashes(), "cli": code_hash("contrastlab.cli")} == before


@pytest.mark.parametrize("module, old, new", [
    ("plan/config.py", "epochs: int = Field(3, ge=1,", "epochs: int = Field(3, ge=2,"),  # a bound: what is allowed
    ("objectives/families/rdrop/__init__.py", 'Literal["batchmean", "sum", "mean"]', 'Literal["batchmean", "sum"]'),
    ("objectives/families/rdrop/__init__.py", 'return f"CE1 + CE2 + ', 'return f"CE1 + CE2 (R-Drop) + '),  # a table's text
    ("cli.py", 'prog="contrastlab"', 'prog="clab"'),
])
def test_every_string_or_bound_that_changes_behaviour_changes_the_hashes(package_copy, module, old, new):
    before = {**stage_hashes(), "cli": code_hash("contrastlab.cli")}
    edit(package_copy, module, old, new)
    after = {**stage_hashes(), "cli": code_hash("contrastlab.cli")}
    assert before != after
