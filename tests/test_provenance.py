"""Code provenance is derived from what a stage imports: the closure, one hash function, and
what an edit changes. (Rerunning the right cells on a finished study: tests/test_workflow.py.)"""
import shutil

import pytest

from contrastlab import families, provenance
from contrastlab.provenance import PACKAGE, code_hash, import_closure

REPO = PACKAGE.parent.parent
SCRIPTS = REPO / "workflow" / "scripts"


def names(paths):
    return {p.relative_to(PACKAGE).as_posix() for p in paths}


def test_a_families_closure_holds_what_it_imports_and_nothing_of_the_other_families():
    token = names(import_closure(families.objective_module("token")))
    assert {"families/token/objective.py", "families/token/__init__.py", "views.py", "attention.py",
            "contrastive.py", "losses.py", "layers.py"} <= token
    assert not any(n.startswith(("families/scl", "families/rdrop", "families/cluster")) for n in token)
    baseline = names(import_closure(families.objective_module("baseline")))
    assert "losses.py" not in baseline and "views.py" not in baseline  # what CE alone does not use


def test_the_training_scripts_closure_does_not_pull_in_any_family():
    train = names(import_closure(SCRIPTS / "train.py"))
    assert {"train.py", "optim.py", "model.py", "config.py", "checkpoint.py", "families/__init__.py"} <= train
    assert not any(n.startswith("families/") and n != "families/__init__.py" for n in train)
    assert "aggregate/tables.py" not in train and "probe.py" not in train


def test_the_dag_build_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = ("import sys, yaml; from contrastlab.study import plan; "
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
    (package_copy / "attention.py").write_text((package_copy / "attention.py").read_text() + "\nEDITED = 1\n")
    provenance.clear_caches()
    after = {f: code_hash(m) for f, m in entries.items()}
    changed = {f for f in entries if before[f] != after[f]}
    # every family whose views come from contrastlab.views (which captures attention rows)
    assert changed == {"token", "cluster", "multilayer", "scl", "focal", "simcse"}


def test_docstrings_comments_and_formatting_do_not_change_a_hash(package_copy):
    before = code_hash("contrastlab.train")
    path = package_copy / "train.py"
    text = path.read_text().replace('"""`train(cfg,', '"""Reworded. `train(cfg,', 1)
    path.write_text(text.replace("\n\n\ndef ", "\n\n\n# a comment\ndef ", 1) + "\n\n# trailing\n")
    provenance.clear_caches()
    assert code_hash("contrastlab.train") == before
    path.write_text(text.replace("CHECKPOINT_EVERY_S = 30.0", "CHECKPOINT_EVERY_S = 31.0"))
    provenance.clear_caches()
    assert code_hash("contrastlab.train") != before


def test_there_is_one_code_hash_function():
    import contrastlab

    sources = [p.read_text() for p in PACKAGE.rglob("*.py")]
    assert sum("hashlib.sha256" in s and "read_text" in s and "def code_hash" in s for s in sources) == 1
    assert not hasattr(contrastlab, "STAGE_FILES")
