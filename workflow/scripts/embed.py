# Snakemake adapter: rule embed -> contrastlab.embed.embed
import torch

from contrastlab.cellconfig import CellConfig
from contrastlab.embed import embed
from contrastlab.logs import job_logging

with job_logging(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    cfg = CellConfig.from_dict(p.cell)
    embed(cfg, snakemake.input.prepared, snakemake.input.weights, snakemake.output[0], split=p.split,
          layers=p.layers, max_samples=p.max_samples, seed=cfg.seed, batch_size=cfg.eval_batch_size)
