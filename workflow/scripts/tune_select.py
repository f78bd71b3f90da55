# Snakemake adapter: rule tune_select -> contrastlab.tuning.write_selection
from contrastlab.jobs import job
from contrastlab.tuning import write_selection

with job(snakemake.log[0], snakemake.params.attempts):
    write_selection(list(snakemake.input.trials), snakemake.params.values, snakemake.output[0],
                    snakemake.params.cell)
