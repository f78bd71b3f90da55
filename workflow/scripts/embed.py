# Snakemake adapter: rule embed -> contrastlab.training.embed.embed
import torch

from contrastlab.plan.config import CellConfig, ProbeConfig, RuntimeConfig
from contrastlab.training.embed import embed
from contrastlab.operations.jobs import job

with job(snakemake.log[0], snakemake.params.attempts):
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    embed(CellConfig.model_validate(p.cell), ProbeConfig.model_validate(p.probe),
          RuntimeConfig.model_validate(snakemake.config.get("runtime") or {}), snakemake.input.prepared,
          snakemake.input.weights, snakemake.output.embeddings)
