# The study planned from its config (contrastlab.plan.study), and the named input/param/resource
# functions of every rule. Paths come from contrastlab.plan.layout only.
import json
import os
import re
import sys

# The package in src/ is importable here and in every job even when it is not pip-installed
# (e.g. under --use-conda, where jobs run in the environment built from environment.yml).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from contrastlab.plan import layout
from contrastlab.plan.config import ConfigError
from contrastlab.plan.configfile import read_config
from contrastlab.plan.contract import ContractError
from contrastlab.objectives.families import objective_module, parse_params
from contrastlab.operations.jobs import export_for_jobs
from contrastlab.operations.provenance import code_hash
from contrastlab.plan.study import plan

CONFIG_SOURCE = ", ".join(map(str, workflow.overwrite_configfiles)) or "config.yaml"
export_for_jobs(SRC, CONFIG_SOURCE)
try:
    for path in workflow.configfiles:  # Snakemake's loader keeps the last of two equal keys: read again, strictly
        read_config(path)
    PLAN = plan(config, CONFIG_SOURCE)
except ConfigError as e:  # one line, no traceback: the message names the key (or, in the code, the output)
    sys.exit(f"{'contract' if isinstance(e, ContractError) else 'config'} error: {e}")
R = PLAN.study.results
RUNTIME = PLAN.study.runtime
# runtime.jobs_per_gpu: `--resources gpu=N` counts GPUs; each GPU job takes one of N x jobs_per_gpu
# slots (the jobs claim a slot's lock file, contrastlab.operations.devices). Snakemake's resources are
# integers, so the limit is scaled here rather than the jobs' request divided.
if RUNTIME.jobs_per_gpu > 1 and "gpu" in workflow.global_resources and workflow.global_resources["gpu"].value:
    workflow.global_resources["gpu"] = workflow.global_resources["gpu"].value * RUNTIME.jobs_per_gpu
BY_KEY = {(c.name, str(c.seed)): c for c in PLAN.cells}
TRIAL_BY_KEY = {(t.arm, str(t.index)): t for t in PLAN.trials}  # tuning trials (contrastlab.plan.tuning)
SCRIPTS = os.path.join(workflow.basedir, "workflow", "scripts")
LANDING = os.path.abspath(layout.landing_file(R))


wildcard_constraints:
    cell="|".join(re.escape(n) for n in PLAN.cell_names()),
    seed=r"\d+",
    trial=r"\d+",
    prep="|".join(re.escape(k) for k in PLAN.preps),


def cell_of(wildcards):
    return BY_KEY[(wildcards.cell, wildcards.seed)]


def script_code(stage, *modules):
    """The code param of a stage: the import closure of its script (and `modules`)."""
    return code_hash(os.path.join(SCRIPTS, f"{stage}.py"), *modules)


# --- input functions -------------------------------------------------------------------------
def prepared_of_cell(wildcards):
    return layout.prepared_dir(R, PLAN.prep_of[(wildcards.cell, int(wildcards.seed))])


def train_inputs(wildcards):
    """A cell's prepared data, and for a tuned cell the selection of its tuning (the train job sets
    the selected values on the cell: a new selection reruns it)."""
    inputs = {"prepared": prepared_of_cell(wildcards)}
    if PLAN.trials_of(wildcards.cell):
        inputs["tuned"] = layout.selection_file(R, wildcards.cell)
    return inputs


def trial_of(wildcards):
    return TRIAL_BY_KEY[(wildcards.cell, wildcards.trial)]


def trial_prepared(wildcards):
    t = trial_of(wildcards)
    return layout.prepared_dir(R, PLAN.prep_of[(t.cell.name, t.cell.seed)])


def trial_metrics(wildcards):
    return [layout.trial_files(R, t.arm, t.index)["metrics"] for t in PLAN.trials_of(wildcards.cell)]


def cell_outputs(stage, name):
    return [layout.stage_files(R, stage, c.name, c.seed)[name] for c in PLAN.cells]


def all_outputs():
    """Each cell's last stage (everything before it follows) and the aggregate's outputs."""
    last = ["plot"] if PLAN.study.probe.enabled else ["train"]
    return [p for c in PLAN.cells for s in last for p in layout.stage_files(R, s, c.name, c.seed).values()
            ] + aggregate_outputs()


def aggregate_runs():
    """What the aggregate reads of each cell x seed (a param: plain values, sorted, so that
    reordering experiments reruns nothing): names, family, sweep, loss params and formula, the
    reference, and the paths of its files."""
    runs = []
    for c in sorted(PLAN.cells, key=lambda c: (c.name, c.seed)):
        files = {f"train_{k}": v for k, v in layout.stage_files(R, "train", c.name, c.seed).items()}
        if PLAN.study.probe.enabled:
            files.update(probe_metrics=layout.stage_files(R, "probe", c.name, c.seed)["metrics"],
                         tsne_xy=layout.stage_files(R, "plot", c.name, c.seed)["tsne_xy"])
        runs.append({"cell": c.name, "seed": c.seed, "experiment": c.experiment, "family": c.family,
                     "sweep": c.sweep, "params": c.config.loss, "reference": PLAN.reference[c.name],
                     "form": parse_params(c.family, c.config.loss).form(),
                     "prepared": layout.prepared_dir(R, PLAN.prep_of[(c.name, c.seed)]), "files": files})
    return runs


def aggregate_tuning():
    """Per tuned cell, its selection and its trials' values and metrics (contrastlab.analysis.aggregate.run.read_tuning)."""
    return [{"cell": cell, "selected": layout.selection_file(R, cell),
             "trials": [{"index": t.index, "values": t.values,
                         "metrics": layout.trial_files(R, cell, t.index)["metrics"]} for t in PLAN.trials_of(cell)]}
            for cell in sorted({t.arm for t in PLAN.trials})]  # sorted: reordering experiments reruns nothing


def aggregate_inputs():
    tuning = [p for arm in aggregate_tuning() for p in [arm["selected"], *(t["metrics"] for t in arm["trials"])]]
    return sorted({p for run in aggregate_runs() for p in run["files"].values()} | set(tuning))


def aggregate_outputs(named=False):
    """The report's tables (md, csv, html) and figures (png), and its first page. named: {key:
    path} for the rule, marked for the report, each with its caption (contrastlab.plan.contract.Output)."""
    paths = {**layout.output_paths(R, PLAN.outputs), "landing": layout.landing_file(R)}
    if PLAN.study.schedule is not None:  # seeds added until decided: the looks (contrastlab.analysis.sequential)
        paths["sequential"] = layout.sequential_table(R)
    if not named:
        return list(paths.values())
    declared = {o.name: o for o in PLAN.outputs}
    for key, path in paths.items():
        name, _, ext = os.path.basename(path).rpartition(".")
        if ext == "png":
            paths[key] = report(path, caption=str(declared[name].caption), category="Figures",
                                labels={"figure": declared[name].title})
        elif key == "sequential":
            continue
        elif ext in ("html", "csv"):
            paths[key] = report(path, caption=str(declared[name].caption), category="Tables",
                                labels={"table": declared[name].title, "format": ext})
    return paths


# --- param functions ---------------------------------------------------------------------------
def cell_config(wildcards):
    return cell_of(wildcards).config.model_dump()


def train_code(wildcards):
    return script_code("train", objective_module(cell_of(wildcards).family))


def trial_config(wildcards):
    return trial_of(wildcards).cell.config.model_dump()


def trial_values(wildcards):
    return [t.values for t in PLAN.trials_of(wildcards.cell)]


def tuned_cell_config(wildcards):
    """A tuned cell's config (its first seed's: the selection does not depend on the seed)."""
    return next(c for c in PLAN.cells if c.name == wildcards.cell).config.model_dump()


def tune_trial_code(wildcards):
    return script_code("tune_trial", objective_module(trial_of(wildcards).cell.family))


def trial_state(wildcards):
    return layout.trial_state(R, wildcards.cell, wildcards.trial)


def aggregate_code():
    """The aggregate imports by name each output's builder module (contrastlab.plan.study.aggregate_modules)."""
    return script_code("aggregate", *PLAN.aggregate_modules())


def sequential_schedule():
    """A sequential study's seed schedule for the aggregate's looks, else None."""
    return PLAN.study.schedule.model_dump() if PLAN.study.schedule is not None else None


def aggregate_report():
    """The families' outputs with their builders, for the aggregate job (contrastlab.plan.contract)."""
    return [o.job_param() for o in PLAN.outputs if o.family is not None]


def prep_params(wildcards):
    p = PLAN.preps[wildcards.prep]
    return {"data": p.data, "tokenizer": p.tokenizer, "max_len": p.max_len}


def seed_of(wildcards):
    return int(wildcards.seed)


def train_state(wildcards):
    return layout.train_state(R, wildcards.cell, wildcards.seed)


def tracked_run(wildcards):
    """Which tracker run a cell x seed's train and probe jobs log to (contrastlab.operations.tracking): its
    identity only; the trackers themselves are a runtime setting, read by the jobs."""
    c = cell_of(wildcards)
    return {"results": R, "family": c.family, "cell": c.name, "seed": c.seed}


def attempts_of(stage):
    """The attempts file of a stage's job (contrastlab.operations.jobs): not an output, it survives a failure."""
    def path(wildcards):
        keys = wildcards.keys()
        if "seed" in keys:
            job = layout.job_key(wildcards.cell, wildcards.seed)
        elif "cell" in keys:  # a tuning trial, or the selection of a cell's trials
            job = f"{wildcards.cell}/trial{wildcards.trial}" if "trial" in keys else f"{wildcards.cell}/select"
        else:
            job = wildcards.get("prep", "study")
        return layout.attempts_file(R, stage, job)
    return path


# --- resource functions ------------------------------------------------------------------------
def gpus_of_cell(wildcards):
    """GPUs a cell's model jobs (train, embed) request: runtime.gpus, none if it runs on the CPU.
    Snakemake only counts them (`--resources gpu=N` locally, `sbatch --gpus` on SLURM); the job
    itself picks its device (contrastlab.operations.devices)."""
    return 0 if RUNTIME.device == "cpu" else RUNTIME.gpus


def train_runtime(wildcards, attempt):
    """Minutes: runtime.runtime_min, and that much more per retry (a retry after a time limit
    resumes from its checkpoint, with more time if the partition allows it)."""
    return RUNTIME.runtime_min * attempt


def write_status():
    """results/status.md and .csv: every cell x seed, done, failed (and why) or not run."""
    from contrastlab.operations.status import write_status_table

    write_status_table(PLAN, R)
