"""The report contract: what a table or figure of the study's report declares, and the checks the
plan runs on every declaration (contrastlab.plan.study.plan, so the DAG build and `contrastlab check`).

A family adds outputs by listing `Output`s in `OUTPUTS` of its package (contrastlab.objectives.families);
the aggregate's own outputs are contrastlab.analysis.aggregate.outputs.COMMON. A family's builder is
called as

    builder(study, comp, cells, paths) -> None

study: the `contrastlab.analysis.aggregate.collect.Study`; comp: its comparisons
(`contrastlab.analysis.aggregate.compare.compare_all`); cells: the family's cells in display order (so a
copied family reports its own cells); paths: {format: path} to write, the formats of
`contrastlab.plan.layout.TABLE_FORMATS` for a table, {"png": path} for a figure. A table's CSV has a
`cell` column: the family's cells and their references. tests/test_contract.py checks all of this
for every family.

Dependencies run one way: a family's report module imports the aggregate's helpers; the
aggregate imports no family, it calls the builders the plan hands it by reference.
Torch- and pandas-free: the DAG build imports it.
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from contrastlab.plan.config import ConfigError

KINDS = ("table", "figure")
BUILDER_PARAMS = ("study", "comp", "cells", "paths")  # a family builder's parameters, in order


class ContractError(ConfigError):
    """A declared output breaks the contract (a ConfigError: the DAG build prints it in one line)."""


@dataclass(frozen=True)
class Output:
    """A table or figure of the study's report."""
    name: str  # file stem: tables/<name>.md|csv|html, figures/<name>.png; unique over every family
    kind: str  # "table" or "figure"
    title: str  # its label in the Snakemake report
    builder: str  # "package.module:function" that writes it
    caption: str | Path  # the .rst shown beside it in the report (non-empty)
    family: str | None = None  # the family that declares it (set by contrastlab.objectives.families.outputs)

    @property
    def module(self) -> str:
        return self.builder.partition(":")[0]

    def job_param(self) -> dict:
        """What the aggregate job needs (no caption path: moving the repository reruns nothing)."""
        return {"name": self.name, "kind": self.kind, "builder": self.builder, "family": self.family}


def family_output(package: str, name: str, kind: str, title: str) -> Output:
    """An output of a family package, by the family convention: built by `<package>.report:<name>`,
    captioned by `<name>.rst` beside the package's code."""
    here = Path(importlib.util.find_spec(package).origin).parent
    return Output(name, kind, title, f"{package}.report:{name}", here / f"{name}.rst")


def resolve(builder: str):
    """The function of a "package.module:function" reference (imports the module)."""
    module, _, function = builder.partition(":")
    return getattr(importlib.import_module(module), function)


def check_outputs(declared: dict[str, list[Output]]) -> None:
    """ContractError naming the culprit unless every output is well formed and its name is unique.
    declared: {who declares them (a family, or "aggregate"): their outputs}."""
    owner: dict[str, str] = {}
    for who, outputs in declared.items():
        for o in outputs:
            if o.name in owner:
                raise ContractError(f"output {o.name!r} is declared by both {owner[o.name]} and {who}: output names "
                                    f"are the report's file names and must be unique; rename it in {who}'s OUTPUTS")
            owner[o.name] = who
            _check_one(who, o)


def _check_one(who: str, o: Output) -> None:
    where = f"{who}: output {o.name!r}"
    if o.kind not in KINDS:
        raise ContractError(f"{where}: kind {o.kind!r} is not one of {', '.join(KINDS)}")
    caption = Path(o.caption)
    if not caption.is_file() or not caption.read_text().strip():
        raise ContractError(f"{where}: its caption {caption} is missing or empty (the report shows it beside the "
                            f"{o.kind})")
    module, _, function = o.builder.partition(":")
    spec = importlib.util.find_spec(module) if module and function else None
    if spec is None or spec.origin is None:
        raise ContractError(f"{where}: builder {o.builder!r} is not a \"package.module:function\" of a module "
                            "that exists")
    params = _functions(spec.origin).get(function)
    if params is None:
        raise ContractError(f"{where}: {spec.origin} defines no function {function!r} (its builder)")
    if o.family is not None and params != BUILDER_PARAMS:
        raise ContractError(f"{where}: builder {function}({', '.join(params)}) must take "
                            f"({', '.join(BUILDER_PARAMS)}) (contrastlab.plan.contract)")


@functools.lru_cache(maxsize=None)
def _functions(path: str) -> dict[str, tuple[str, ...]]:
    """{function: its positional parameters} of a module's top level, read, not imported: the
    builders' modules need pandas and matplotlib, the DAG build does not."""
    tree = ast.parse(Path(path).read_text(), path)
    return {n.name: tuple(a.arg for a in n.args.posonlyargs + n.args.args)
            for n in tree.body if isinstance(n, ast.FunctionDef)}
