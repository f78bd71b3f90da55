# Snakemake adapter: rule prepare -> contrastlab.data.prepare
from contrastlab.plan.config import DataConfig
from contrastlab.data.splits import prepare
from contrastlab.operations.jobs import job
from contrastlab.training.model import load_tokenizer

p = snakemake.params.prep
with job(snakemake.log[0], snakemake.params.attempts):
    prepare(DataConfig.model_validate(p["data"]), load_tokenizer(p["tokenizer"]), p["max_len"], snakemake.output[0])
