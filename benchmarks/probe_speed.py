"""Our probe + t-SNE against a plain scikit-learn "reference evaluation", side by side.

Reference: StandardScaler + LinearSVC 5-fold (cross_val_score), KNeighborsClassifier(1) 5-fold,
KMeans(n_init=10), sklearn TSNE(perplexity=30), all with scikit-learn defaults. Both get the same
folds (StratifiedKFold(5, shuffle, seed)) and seeds, so the metric values should agree:
accuracies within ACC_TOL, ARI/NMI within CLUSTER_TOL. The two t-SNE maps are compared by the
5-fold kNN(5) accuracy of the 2-D map (within TSNE_TOL), not by coordinates. Our probe also
computes silhouette, alignment/uniformity and intra/inter cosine, which the reference does not:
its time includes them.

    .venv/bin/python benchmarks/probe_speed.py            # 20,000 x 384 and 20,000 x 768
    .venv/bin/python benchmarks/probe_speed.py --quick    # 3,000 x 384, seconds
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from contrastlab.operations.io import write_json
from contrastlab.analysis.plots import tsne_2d
from contrastlab.analysis.probe import ProbeSettings, probe

ACC_TOL, CLUSTER_TOL, TSNE_TOL = 0.005, 0.02, 0.03
GOAL = 0.35
OUT = Path(__file__).parent / "results" / "probe_speed.json"


def embeddings(n: int, d: int, n_classes: int, seed: int = 0, rank: int = 32, sep: float = 0.35):
    """Synthetic [CLS]-like embeddings [n, d] float32: a low-rank latent Gaussian per class
    (means `sep` apart per latent axis: overlapping classes, ~0.85-0.9 separable), isotropic
    noise, and a large shared offset (real embeddings sit in a narrow cone: high cosine)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    z = rng.normal(size=(n, rank)) + sep * rng.normal(size=(n_classes, rank))[y]
    x = z @ (rng.normal(size=(rank, d)) / np.sqrt(rank)) + 0.5 * rng.normal(size=(n, d)) + 2 * rng.normal(size=d)
    return x.astype(np.float32), y


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def map_knn_acc(xy: np.ndarray, y: np.ndarray, seed: int) -> float:
    """How well a 2-D map keeps the classes apart: 5-fold kNN(5) accuracy on it."""
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(5), xy, y, cv=cv).mean())


def reference(x, y, seed):
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    svm, t_svm = timed(cross_val_score, make_pipeline(StandardScaler(), LinearSVC()), x, y, cv=cv)
    knn, t_knn = timed(cross_val_score, KNeighborsClassifier(1), x, y, cv=cv)
    pred, t_km = timed(KMeans(len(np.unique(y)), n_init=10, random_state=seed).fit_predict, x)
    return ({"svm_acc": svm.mean(), "knn1_acc": knn.mean(), "kmeans_ari": adjusted_rand_score(y, pred),
             "kmeans_nmi": normalized_mutual_info_score(y, pred)},
            {"svm": t_svm, "knn1": t_knn, "kmeans": t_km})


def run_size(n, d, n_classes, seed=0) -> dict:
    x, y = embeddings(n, d, n_classes, seed)
    ours, t_probe = timed(probe, x, y, ProbeSettings(seed=seed, n_jobs=os.cpu_count() or 1))
    ref, ref_times = reference(x, y, seed)
    xy_ours, t_tsne = timed(tsne_2d, x, seed=seed, perplexity=30, n_jobs=os.cpu_count() or 1)
    xy_ref, t_tsne_ref = timed(TSNE(perplexity=30, random_state=seed).fit_transform, x)
    ours["tsne_knn_acc"], ref["tsne_knn_acc"] = map_knn_acc(xy_ours, y, seed), map_knn_acc(xy_ref, y, seed)
    tol = {"svm_acc": ACC_TOL, "knn1_acc": ACC_TOL, "kmeans_ari": CLUSTER_TOL, "kmeans_nmi": CLUSTER_TOL,
           "tsne_knn_acc": TSNE_TOL}
    agree = {m: bool(abs(ours[m] - ref[m]) <= t) for m, t in tol.items()}
    times = {"probe": [t_probe, sum(ref_times.values())], "tsne": [t_tsne, t_tsne_ref]}
    times["total"] = [times["probe"][0] + t_tsne, times["probe"][1] + t_tsne_ref]
    return {"n": n, "d": d, "classes": n_classes, "ours": ours, "reference": ref, "tolerance": tol,
            "agree": agree, "reference_stage_times_s": ref_times,
            "times_s": {k: {"ours": a, "reference": b, "ratio": a / b} for k, (a, b) in times.items()}}


def print_table(r: dict) -> None:
    print(f"\n{r['n']} x {r['d']}, {r['classes']} classes")
    print(f"  {'metric':<14}{'ours':>10}{'reference':>11}{'tol':>8}  agree")
    for m, t in r["tolerance"].items():
        print(f"  {m:<14}{r['ours'][m]:>10.4f}{r['reference'][m]:>11.4f}{t:>8.3f}  {r['agree'][m]}")
    extra = {m: v for m, v in r["ours"].items() if m not in r["tolerance"]}
    print("  ours only: " + ", ".join(f"{m} {v:.3f}" for m, v in extra.items()))
    print(f"  {'time (s)':<14}{'ours':>10}{'reference':>11}{'ratio':>8}")
    for k, v in r["times_s"].items():
        print(f"  {k:<14}{v['ours']:>10.1f}{v['reference']:>11.1f}{v['ratio']:>7.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small size (3,000 x 384) for a smoke test")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows even when piped to a log file
    sizes = [(3000, 384, 2)] if args.quick else [(20000, 384, 2), (20000, 768, 3)]
    results = []
    for n, d, c in sizes:  # the JSON is rewritten after each size: a run cut short keeps its figures
        results.append(run_size(n, d, c))
        print_table(results[-1])
        total = {k: sum(r["times_s"]["total"][k] for r in results) for k in ("ours", "reference")}
        summary = {"quick": args.quick, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                   "complete": len(results) == len(sizes), "goal_ratio": GOAL,
                   "overall_ratio": total["ours"] / total["reference"],
                   "all_agree": all(all(r["agree"].values()) for r in results), "sizes": results}
        write_json(args.out, summary)
    print(f"\noverall time ratio ours/reference: {summary['overall_ratio']:.2f}x (goal <= {GOAL}x); "
          f"all metrics agree within tolerance: {summary['all_agree']}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
