# Snakemake adapter: rule aggregate -> the study's tables and figures (contrastlab.aggregate.run)
from contrastlab.aggregate.run import aggregate
from contrastlab.logs import job_logging

with job_logging(snakemake.log[0]):
    aggregate(snakemake.params.rows, dict(snakemake.output.items()), n_boot=snakemake.params.n_boot)
