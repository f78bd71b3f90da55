# Snakemake adapter: rule probe -> contrastlab.probe.probe on the final [CLS] (and any extra layers)
import numpy as np

from contrastlab.io import write_json
from contrastlab.logs import job_logging
from contrastlab.probe import ProbeConfig, probe

with job_logging(snakemake.log[0]) as log:
    emb = np.load(snakemake.input[0])
    cfg = ProbeConfig(folds=snakemake.params.folds, seed=snakemake.params.seed, n_jobs=snakemake.threads)
    out = {"n": int(len(emb["labels"])), **probe(emb["cls"], emb["labels"], cfg)}
    for key in (k for k in emb.files if k.startswith("layer")):
        out.update({f"{key}_{m}": v for m, v in probe(emb[key], emb["labels"], cfg).items()})
    log.info("probe: %s", out)
    write_json(snakemake.output[0], out)
