# Config validation, the grid of cells, and the named input/param functions of every rule.
import os
import re
import sys

from snakemake.utils import validate

# The package in src/ is importable here and in every job even when it is not pip-installed
# (e.g. under --use-conda, where jobs run in the environment built from environment.yml).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from contrastlab.logs import export_import_path

export_import_path(SRC)

from contrastlab.provenance import stage_code
from contrastlab.validate import check_config


validate(config, "../schemas/config.schema.yaml")  # fills the documented defaults
CELLS = check_config(config)
R = config["results"]
CELL_DIR = f"{R}/cells/{{cell}}/seed{{seed}}"
BY_KEY = {(c.name, str(c.seed)): c for c in CELLS}
CELL_NAMES = list(dict.fromkeys(c.name for c in CELLS))


wildcard_constraints:
    cell="|".join(re.escape(n) for n in CELL_NAMES),
    seed=r"\d+",
    prep=r"[A-Za-z0-9_.\-]+",


def cell_of(wildcards):
    return BY_KEY[(wildcards.cell, wildcards.seed)]


def prep_key(model: dict) -> str:
    """One prepared (tokenised) dataset per tokenizer and max_len, shared by every cell using them."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(os.path.normpath(model["name"]))).strip("-")
    return f"{slug}-len{model['max_len']}"


PREPS = {prep_key(c.config["model"]): c.config["model"] for c in CELLS}


# --- input functions -------------------------------------------------------------------------
def prepared_of_cell(wildcards):
    return f"{R}/prepared/{prep_key(cell_of(wildcards).config['model'])}"


def cell_outputs(stage_file):
    return [f"{R}/cells/{c.name}/seed{c.seed}/{stage_file}" for c in CELLS]


def all_outputs():
    return [
        *cell_outputs("probe/metrics.json"),
        *cell_outputs("plots/tsne.png"),
        *cell_outputs("plots/curves.png"),
        *aggregate_outputs(),
    ]


def aggregate_rows():
    """What the aggregate needs of each cell x seed (plain values: a params entry): its results
    folder, family, sweep values, loss params with defaults, and the cell it is compared with
    (the first cell of the experiment's `compare_to`, else of the `baseline` experiment)."""
    from dataclasses import asdict

    from contrastlab.objectives import parse_params

    first = {}
    for c in CELLS:
        first.setdefault(c.experiment, c.name)
    experiments = config["experiments"]
    return [
        {"cell": c.name, "seed": c.seed, "experiment": c.experiment, "family": c.family,
         "reference": first[(experiments[c.experiment] or {}).get("compare_to") or config["baseline"]],
         "sweep": c.sweep, "params": asdict(parse_params(c.family, c.config["loss"])),
         "dir": f"{R}/cells/{c.name}/seed{c.seed}"}
        for c in CELLS
    ]


def aggregate_outputs(named=False):
    """The tables (md, csv, html) and figures (png) of this grid: those of a family only when the
    grid has cells of it (contrastlab.aggregate.outputs). named: {key: path} for the rule, with
    the figures and tables (HTML to read, CSV to download) marked for the report, each with its
    caption ../report/<name>.rst."""
    from contrastlab.aggregate.outputs import OUTPUTS, output_paths

    paths = output_paths(R, {c.family for c in CELLS})
    if not named:
        return list(paths.values())
    outputs = {o.name: o for o in OUTPUTS}
    for key, path in paths.items():
        name, _, ext = os.path.basename(path).rpartition(".")
        if ext == "png":
            paths[key] = report(path, caption=f"../report/{name}.rst", category="Figures",
                                labels={"figure": outputs[name].title})
        elif ext in ("html", "csv"):
            paths[key] = report(path, caption=f"../report/{name}.rst", category="Tables",
                                labels={"table": outputs[name].title, "format": ext})
    return paths


# --- param functions ---------------------------------------------------------------------------
def cell_config(wildcards):
    return cell_of(wildcards).config


def train_code(wildcards):
    return stage_code("train", cell_of(wildcards).family)


def prep_model(wildcards):
    return PREPS[wildcards.prep]


def seed_of(wildcards):
    return int(wildcards.seed)


# --- resource functions ------------------------------------------------------------------------
def gpus_of_cell(wildcards):
    """GPUs a cell's model jobs (train, embed) request: runtime.gpus, none if the cell runs on the CPU.
    Snakemake only counts them (`--resources gpu=N` locally, `sbatch --gpus` on SLURM); the job
    itself picks its device (contrastlab.devices)."""
    return 0 if cell_of(wildcards).config["device"] == "cpu" else config["runtime"]["gpus"]
