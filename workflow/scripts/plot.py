# Snakemake adapter: rule plot -> t-SNE of the cell's [CLS], and its loss / grad-norm / validation curves
import json

import numpy as np
import pandas as pd

from contrastlab.operations.io import atomic_path
from contrastlab.operations.jobs import job
from contrastlab.analysis.plots import plot_curves, plot_tsne, tsne_2d

with job(snakemake.log[0], snakemake.params.attempts):
    w, i = snakemake.wildcards, snakemake.input
    emb = np.load(i.embeddings)
    xy = tsne_2d(emb["cls"], seed=int(w.seed), perplexity=snakemake.params.perplexity)
    with atomic_path(snakemake.output.tsne_xy) as tmp, open(tmp, "wb") as f:
        np.savez(f, xy=xy, labels=emb["labels"], label_names=emb["label_names"])
    probe = json.loads(open(i.probe).read())
    title = f"{w.cell} (seed {w.seed})"
    plot_tsne(xy, emb["labels"], [str(n) for n in emb["label_names"]], snakemake.output.tsne,
              f"{title}: SVM {probe['svm_acc']:.3f}, 1-NN {probe['knn1_acc']:.3f}")
    plot_curves(pd.read_csv(i.history), pd.read_csv(i.epochs), snakemake.output.curves, title)
