# contrastlab: ablation study of contrastive fine-tuning, one cell = one training run.
# Per cell: prepare (shared) -> train -> embed -> probe -> plot; then aggregate over all cells.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
