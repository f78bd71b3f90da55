# Snakemake adapter: rule tune_select -> contrastlab.plan.tuning.write_selection
from contrastlab.operations.jobs import job
from contrastlab.plan.tuning import write_selection

with job(snakemake.log[0], snakemake.params.attempts):
    write_selection(list(snakemake.input.trials), snakemake.params.values, snakemake.output[0],
                    snakemake.params.cell)
