# Snakemake adapter: rule train -> contrastlab.train.train
import os

import torch

from contrastlab.cellconfig import CellConfig
from contrastlab.logs import job_logging
from contrastlab.train import train

with job_logging(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    train(CellConfig.from_dict(snakemake.params.cell), snakemake.input.prepared,
          os.path.dirname(snakemake.output.metrics))
