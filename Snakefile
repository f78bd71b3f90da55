# contrastlab: ablation study of contrastive fine-tuning, one cell = one training run.
# Per cell: prepare (shared) -> train -> embed -> probe -> plot; then aggregate over all cells.
import os

from snakemake.utils import min_version

min_version("9.0")


# A config file given with --configfile is the whole study: config.yaml is read only when none is.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/aggregate.smk"


# The report's first page states the study and its verdict once the aggregate has written it.
report: LANDING if os.path.exists(LANDING) else "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_outputs(),


onsuccess:
    write_status()


onerror:
    write_status()
