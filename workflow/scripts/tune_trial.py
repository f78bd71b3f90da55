# Snakemake adapter: rule tune_trial -> contrastlab.training.train.train on the validation split only
import torch

from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.operations.jobs import job
from contrastlab.training.train import fingerprint_of, train

cfg = CellConfig.model_validate(snakemake.params.cell)
runtime = RuntimeConfig.model_validate(snakemake.config.get("runtime") or {})  # never a param: reruns nothing
with job(snakemake.log[0], snakemake.params.attempts, fingerprint_of(cfg)) as attempts:
    torch.set_num_threads(snakemake.threads)
    train(cfg, runtime, snakemake.input.prepared, dict(snakemake.output.items()), snakemake.params.state,
          attempts, score_test=False)
