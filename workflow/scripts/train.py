# Snakemake adapter: rule train -> contrastlab.training.train.train
import json
from pathlib import Path

import torch

from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.operations.jobs import job
from contrastlab.operations.tracking import RunRef, Tracking
from contrastlab.training.train import fingerprint_of, train
from contrastlab.plan.tuned import apply_values

cfg = CellConfig.model_validate(snakemake.params.cell)
if "tuned" in snakemake.input.keys():  # a tuned cell: the values its tuning selected (contrastlab.plan.tuning)
    cfg = apply_values(cfg, json.loads(Path(snakemake.input.tuned).read_text())["values"])
runtime = RuntimeConfig.model_validate(snakemake.config.get("runtime") or {})  # never a param: reruns nothing
with job(snakemake.log[0], snakemake.params.attempts, fingerprint_of(cfg)) as attempts:
    torch.set_num_threads(snakemake.threads)
    with Tracking(runtime, RunRef(**snakemake.params.run), cfg.model_dump()) as tracker:
        metrics = train(cfg, runtime, snakemake.input.prepared, dict(snakemake.output.items()), snakemake.params.state,
                        attempts, tracker)
        tracker.log("final", metrics, metrics["steps"])
