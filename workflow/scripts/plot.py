# Snakemake adapter: rule plot -> t-SNE of the cell's [CLS] and its loss / grad-norm curves
import numpy as np
import pandas as pd

from contrastlab.io import atomic_path
from contrastlab.logs import job_logging
from contrastlab.plots import plot_curves, plot_tsne, tsne_2d

with job_logging(snakemake.log[0]):
    w = snakemake.wildcards
    emb = np.load(snakemake.input.embeddings)
    xy = tsne_2d(emb["cls"], seed=int(w.seed), perplexity=snakemake.params.perplexity)
    with atomic_path(snakemake.output.tsne_xy) as tmp, open(tmp, "wb") as f:
        np.savez(f, xy=xy, labels=emb["labels"], label_names=emb["label_names"])
    title = f"{w.cell} (seed {w.seed})"
    plot_tsne(xy, emb["labels"], [str(n) for n in emb["label_names"]], snakemake.output.tsne, title)
    plot_curves(pd.read_csv(snakemake.input.history), snakemake.output.curves, title)
