"""Where every output lives: a cell's files per stage, the prepared data, the study's tables,
figures and status table.

The rules take their inputs and outputs from here, the jobs write to the paths they are given,
and the aggregate reads the paths it is given, so each file name is written once: here.
Torch-free (the DAG build imports it).
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contrastlab.plan.contract import Output

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
# What a tuning trial writes (contrastlab.plan.tuning): validation only, no weights, no test predictions.
TRIAL_FILES = {"metrics": "metrics.json", "history": "history.csv", "epochs": "epochs.csv", "config": "config.json"}
# Inside a prepared dataset directory (contrastlab.data.splits).
PREPARED_FILES = {"tokens": "tokens.npz", "summary": "labels.json"}
TABLE_FORMATS = ("md", "csv", "html")


def cell_dir(results: str, cell="{cell}", seed="{seed}") -> str:
    return f"{results}/cells/{job_key(cell, seed)}"


def stage_files(results: str, stage: str, cell="{cell}", seed="{seed}") -> dict[str, str]:
    """{name: path} of a stage's outputs for one cell x seed (wildcards by default)."""
    base = cell_dir(results, cell, seed)
    return {name: f"{base}/{f}" for name, f in STAGE_FILES[stage].items()}


def train_state(results: str, cell="{cell}", seed="{seed}") -> dict[str, str]:
    base = cell_dir(results, cell, seed)
    return {name: f"{base}/{f}" for name, f in TRAIN_STATE.items()}


def tuning_dir(results: str, cell="{cell}") -> str:
    return f"{results}/tuning/{cell}"


def trial_files(results: str, cell="{cell}", trial="{trial}") -> dict[str, str]:
    """{name: path} of one tuning trial of a cell (wildcards by default)."""
    return {name: f"{tuning_dir(results, cell)}/trial{trial}/{f}" for name, f in TRIAL_FILES.items()}


def trial_state(results: str, cell="{cell}", trial="{trial}") -> dict[str, str]:
    base = f"{tuning_dir(results, cell)}/trial{trial}"
    return {name: f"{base}/{f.rpartition('/')[2]}" for name, f in TRAIN_STATE.items()}


def selection_file(results: str, cell="{cell}") -> str:
    """A tuned cell's selected trial and every trial's score (contrastlab.plan.tuning.select)."""
    return f"{tuning_dir(results, cell)}/selected.json"


def job_key(cell="{cell}", seed="{seed}") -> str:
    """The key of a cell x seed's job in the logs, benchmarks and attempts folders."""
    return f"{cell}/seed{seed}"


def job_log(results: str, stage: str, job: str | None = None) -> str:
    """A job's log: logs/<stage>/<job>.log (job: a job_key or a prepared dataset's key), or
    logs/<stage>.log for a stage with one job (the aggregate)."""
    return f"{results}/logs/{stage}/{job}.log" if job is not None else f"{results}/logs/{stage}.log"


def job_benchmark(results: str, stage: str, job: str | None = None) -> str:
    """A job's Snakemake benchmark (wall time, max RSS, CPU time), named like its log."""
    return f"{results}/benchmarks/{stage}/{job}.tsv" if job is not None else f"{results}/benchmarks/{stage}.tsv"


def log_file(results: str, stage: str, cell="{cell}", seed="{seed}") -> str:
    return job_log(results, stage, job_key(cell, seed))


def benchmark_file(results: str, stage: str, cell="{cell}", seed="{seed}") -> str:
    return job_benchmark(results, stage, job_key(cell, seed))


def slurm_log_dir(results: str) -> str:
    """Where the SLURM profile (profiles/slurm, `slurm-logdir`) writes one log per SLURM job."""
    return f"{results}/logs/slurm"


def attempts_file(results: str, stage: str, job: str) -> str:
    """A job's record of its attempts (contrastlab.operations.jobs); `job` is a job_key, a prepared
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


def prepared_key(label: str, identity: dict) -> str:
    """A prepared dataset's folder name (contrastlab.data.preps): a readable label, cut to 60 characters,
    and a hash of `identity`, everything the dataset's content depends on, so that two different
    datasets (of two studies given one results folder, say) never share a folder."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{label[:60]}-{digest}"


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


def sequential_seeds_file(results: str) -> str:
    """A sequential study's seeds per cell ({"seeds": {cell: [1, 2, ...]}}): grown by `contrastlab
    run` (contrastlab.operations.runloop), read by the DAG build; a cell not in it runs the schedule's start."""
    return f"{results}/sequential_seeds.json"


def sequential_table(results: str) -> str:
    """Per comparison of a sequential study: its looks, seeds, decision and why it stopped."""
    return f"{results}/sequential.csv"
