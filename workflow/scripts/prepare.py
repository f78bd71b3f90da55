# Snakemake adapter: rule prepare -> contrastlab.data.prepare
from contrastlab.data import DataConfig, prepare
from contrastlab.logs import job_logging
from contrastlab.model import load_tokenizer

with job_logging(snakemake.log[0]):
    model = snakemake.params.model
    prepare(DataConfig.from_dict(snakemake.params.data), load_tokenizer(model["name"]), model["max_len"],
            snakemake.output[0])
