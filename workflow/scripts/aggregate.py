# Snakemake adapter: rule aggregate -> the study's tables and figures (contrastlab.analysis.aggregate.run)
import os

from contrastlab.analysis.aggregate.run import aggregate
from contrastlab.operations.jobs import job

with job(snakemake.log[0], snakemake.params.attempts):
    p = snakemake.params
    # The display order and the config's name come from the config at run time, not from params:
    # reordering experiments or renaming the file reruns nothing.
    aggregate(p.runs, dict(snakemake.output.items()), baseline=p.baseline, analysis=p.analysis,
              config=snakemake.config, source=os.environ.get("CONTRASTLAB_CONFIG_FILES", "config.yaml"),
              report=p.report, tuning=p.tuning, sequential=p.sequential)
