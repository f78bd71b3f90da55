"""Where every output lives: a cell's files per stage, the prepared data, the study's tables,
figures and status table.

The rules take their inputs and outputs from here, the jobs write to the paths they are given,
and the aggregate reads the paths it is given, so each file name is written once: here.
Torch-free (the DAG build imports it).
"""
from __future__ import annotations

from dataclasses import dataclass

CELL_DIR = "{results}/cells/{cell}/seed{seed}"
STAGE_FILES = {
    "train": {"metrics": "train/metrics.json", "weights": "train/weights.safetensors",
              "predictions": "train/predictions.csv", "history": "train/history.csv",
              "epochs": "train/epochs.csv", "config": "train/config.json"},
    "embed": {"embeddings": "embed/embeddings.npz"},
    "probe": {"metrics": "probe/metrics.json"},
    "plot": {"tsne": "plots/tsne.png", "tsne_xy": "plots/tsne.npz", "curves": "plots/curves.png"},
}
# What a training job keeps across its attempts. Not outputs: Snakemake leaves them when a job fails.
TRAIN_STATE = {"checkpoint": "train/checkpoint.pt", "attempts": "train/attempts.json"}
# Inside a prepared dataset directory (contrastlab.data).
PREPARED_FILES = {"tokens": "tokens.npz", "summary": "labels.json"}
TABLE_FORMATS = ("md", "csv", "html")


@dataclass(frozen=True)
class Output:
    """A table or figure of the study's report."""
    name: str  # file stem: tables/<name>.<fmt>, figures/<name>.png; caption workflow/report/<name>.rst
    kind: str  # "table" or "figure"
    title: str


def cell_dir(results: str, cell="{cell}", seed="{seed}") -> str:
    return CELL_DIR.format(results=results, cell=cell, seed=seed)


def stage_files(results: str, stage: str, cell="{cell}", seed="{seed}") -> dict[str, str]:
    """{name: path} of a stage's outputs for one cell x seed (wildcards by default)."""
    base = cell_dir(results, cell, seed)
    return {name: f"{base}/{f}" for name, f in STAGE_FILES[stage].items()}


def train_state(results: str, cell="{cell}", seed="{seed}") -> dict[str, str]:
    base = cell_dir(results, cell, seed)
    return {name: f"{base}/{f}" for name, f in TRAIN_STATE.items()}


def log_file(results: str, stage: str, cell="{cell}", seed="{seed}") -> str:
    return f"{results}/logs/{stage}/{cell}/seed{seed}.log"


def benchmark_file(results: str, stage: str, cell="{cell}", seed="{seed}") -> str:
    return f"{results}/benchmarks/{stage}/{cell}/seed{seed}.tsv"


def attempts_file(results: str, stage: str, job: str) -> str:
    """A job's record of its attempts (contrastlab.jobs); `job` is "<cell>/seed<seed>", a prepared
    dataset's key, or "study". Not an output, so a failed job leaves it for the retry and the
    status table."""
    return f"{results}/attempts/{stage}/{job}.json"


def tensorboard_dir(results: str, family: str, cell: str, seed) -> str:
    """A cell x seed's TensorBoard run: `tensorboard --logdir <results>/tb` groups the study by family."""
    return f"{results}/tb/{family}/{cell}/seed{seed}"


def mlflow_store(results: str) -> str:
    """The SQLite file of the study's MLflow runs, unless runtime.tracking_uri names another store."""
    return f"{results}/mlflow.db"


def wandb_dir(results: str) -> str:
    """Where W&B keeps its offline runs (`wandb sync` uploads them)."""
    return f"{results}/wandb"


def controller_log(results: str) -> str:
    """The log of the Snakemake controller that `contrastlab submit` runs as a SLURM job."""
    return f"{results}/logs/controller/%j.log"


def prepared_dir(results: str, key="{prep}") -> str:
    return f"{results}/prepared/{key}"


def output_paths(results: str, outputs: list[Output]) -> dict[str, str]:
    """{key: path}: `<name>_<fmt>` for each format of a table, `<name>` for a figure."""
    paths = {}
    for o in outputs:
        if o.kind == "table":
            paths.update({f"{o.name}_{fmt}": f"{results}/tables/{o.name}.{fmt}" for fmt in TABLE_FORMATS})
        else:
            paths[o.name] = f"{results}/figures/{o.name}.png"
    return paths


def landing_file(results: str) -> str:
    """The report's first page (reStructuredText), written by the aggregate."""
    return f"{results}/report.rst"


def status_paths(results: str) -> dict[str, str]:
    return {"md": f"{results}/status.md", "csv": f"{results}/status.csv"}
