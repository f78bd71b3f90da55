# Snakemake adapter: rule probe -> contrastlab.analysis.probe.probe on the final [CLS] (and any extra layers)
import numpy as np

from contrastlab.plan.config import RuntimeConfig
from contrastlab.operations.io import write_json
from contrastlab.operations.jobs import job
from contrastlab.analysis.probe import ProbeSettings, probe
from contrastlab.operations.tracking import RunRef, Tracking

with job(snakemake.log[0], snakemake.params.attempts):
    emb = np.load(snakemake.input.embeddings)
    cfg = ProbeSettings(folds=snakemake.params.folds, seed=snakemake.params.seed, n_jobs=snakemake.threads)
    out = {"n": int(len(emb["labels"])), **probe(emb["cls"], emb["labels"], cfg)}
    for key in (k for k in emb.files if k.startswith("layer")):
        out.update({f"{key}_{m}": v for m, v in probe(emb[key], emb["labels"], cfg).items()})
    write_json(snakemake.output.metrics, out)
    runtime = RuntimeConfig.model_validate(snakemake.config.get("runtime") or {})  # never a param: reruns nothing
    with Tracking(runtime, RunRef(**snakemake.params.run)) as tracker:  # the training job's run
        tracker.log("probe", out, 0)
