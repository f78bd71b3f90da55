"""Representation probes: how well do a cell's embeddings separate the classes?

`probe(x, y, cfg)` returns plain floats (all seeded, so a rerun gives the same numbers):
- `svm_acc`, `knn1_acc`: linear SVM (standardised features) and 1-NN accuracy, mean over the
  same stratified folds; each fold's binary SVM problems and its 1-NN run as parallel threads;
- `kmeans_ari`, `kmeans_nmi`: k-means with k = number of classes against the true labels;
- `silhouette`: silhouette of the true labels (euclidean);
- `alignment`, `uniformity`: Wang & Isola (2020) on L2-normalised embeddings;
- `intra_cos`, `inter_cos`: mean cosine similarity of same-class and of different-class pairs.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

SILHOUETTE_MAX = 5000  # above this many points the silhouette (O(N^2)) uses a seeded sample
UNIFORMITY_MAX = 4000  # uniformity (all pairs) uses a seeded subset of this many points


@dataclass
class ProbeSettings:
    """How the probes run (the config's `probe:` section chooses the split and the folds)."""
    folds: int = 5
    seed: int = 0
    svm_C: float = 1.0
    n_jobs: int = 2  # threads over the folds' tasks
    kmeans_n_init: int = 10


def probe(x: np.ndarray, y: np.ndarray, cfg: ProbeSettings | None = None) -> dict[str, float]:
    """x: [N, D] embeddings, y: [N] integer (or any hashable) labels, C >= 2 classes -> metrics."""
    cfg = cfg or ProbeSettings()
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"probe needs x [N, D] and y [N]; got {x.shape} and {y.shape}")
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("probe needs at least two classes")
    x = x.astype(np.float32, copy=False) if x.dtype != np.float64 else x

    svm_acc, knn1_acc = _fold_accuracies(x, y, cfg)
    pred = KMeans(n_clusters=len(classes), n_init=cfg.kmeans_n_init, random_state=cfg.seed).fit_predict(x)
    out = {
        "svm_acc": svm_acc,
        "knn1_acc": knn1_acc,
        "kmeans_ari": float(adjusted_rand_score(y, pred)),
        "kmeans_nmi": float(normalized_mutual_info_score(y, pred)),
        "silhouette": float(silhouette_score(
            x, y, sample_size=SILHOUETTE_MAX if len(y) > SILHOUETTE_MAX else None, random_state=cfg.seed)),
    }
    out.update(alignment_uniformity(x, y, seed=cfg.seed))
    return out


def folds_of(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The shuffled stratified (train, test) index pairs both classifiers use."""
    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def make_linear_svc(C: float = 1.0, seed: int = 0) -> LinearSVC:
    # dual=False (primal, liblinear's trust-region Newton) pinned: the default moved from True to
    # "auto" across scikit-learn versions; primal suits N >> D, converges without max_iter warnings
    # on overlapping classes, and is deterministic (random_state only matters to the dual solver).
    return LinearSVC(C=C, dual=False, random_state=seed)


def nn1_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """1-NN by euclidean distance (KNeighborsClassifier's default) via matrix products.

    argmin_j ||a - b_j||^2 = argmin_j (||b_j||^2 - 2 a.b_j): ||a||^2 is constant per row.
    x_train [M, D], y_train [M], x_test [K, D] -> predicted labels [K]; chunked to bound memory.
    """
    sq = np.einsum("ij,ij->i", x_train, x_train)
    pred = np.empty(len(x_test), dtype=y_train.dtype)
    for s in range(0, len(x_test), chunk):
        d = sq[None, :] - 2.0 * (x_test[s:s + chunk] @ x_train.T)
        pred[s:s + chunk] = y_train[np.argmin(d, axis=1)]
    return pred


def svm_tasks(n_classes: int) -> list[int | None]:
    """The binary problems of a linear SVM: one (None) for two classes, else one per class
    (one-vs-rest, as liblinear solves LinearSVC's multi-class case internally, one after another)."""
    return [None] if n_classes == 2 else list(range(n_classes))


def _fold_accuracies(x: np.ndarray, y: np.ndarray, cfg: ProbeSettings) -> tuple[float, float]:
    """Mean over folds of (linear-SVM accuracy, 1-NN accuracy).

    The work is split into independent tasks run on `n_jobs` threads (liblinear and BLAS release
    the GIL): per fold, the 1-NN and each binary SVM problem (one per class beyond two classes),
    so three classes x 5 folds keep both cores busy instead of leaving a 3-problem fold to one."""
    folds = folds_of(y, cfg.folds, cfg.seed)
    n_classes = int(y.max()) + 1
    scaled = [StandardScaler().fit(x[train]) for train, _ in folds]

    def svm_scores(f: int, c: int | None) -> np.ndarray:
        train, test = folds[f]
        target = y[train] if c is None else (y[train] == c).astype(np.int64)
        svm = make_linear_svc(cfg.svm_C, cfg.seed).fit(scaled[f].transform(x[train]), target)
        return svm.decision_function(scaled[f].transform(x[test]))

    def knn_acc(f: int) -> float:
        train, test = folds[f]
        return float(np.mean(nn1_predict(x[train], y[train], x[test]) == y[test]))

    problems = svm_tasks(n_classes)
    n_jobs = max(1, min(cfg.n_jobs, len(folds) * (len(problems) + 1)))
    # one BLAS thread per worker when tasks run side by side: no oversubscription
    with threadpool_limits(1 if n_jobs > 1 else None), ThreadPoolExecutor(n_jobs) as pool:
        scores = [[pool.submit(svm_scores, f, c) for c in problems] for f in range(len(folds))]
        knn = [pool.submit(knn_acc, f) for f in range(len(folds))]
        scores = [[s.result() for s in fold] for fold in scores]
        knn = [k.result() for k in knn]
    svm_acc = []
    for (_, test), fold in zip(folds, scores):
        pred = (fold[0] > 0).astype(np.int64) if n_classes == 2 else np.argmax(np.stack(fold, 1), 1)
        svm_acc.append(np.mean(pred == y[test]))
    return float(np.mean(svm_acc)), float(np.mean(knn))


def alignment_uniformity(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Wang & Isola (2020) alignment (alpha=2) and uniformity (t=2), and intra/inter-class cosine.

    x [N, D] is L2-normalised first. We have no augmentations, so the positive pairs of the
    alignment are the same-class pairs (i != j): alignment = mean ||f_i - f_j||^2 over them,
    which on the unit sphere equals 2 - 2 * intra_cos exactly. uniformity = log mean over all
    pairs i < j of exp(-2 ||f_i - f_j||^2), on a seeded subset of UNIFORMITY_MAX points if N is
    larger. intra_cos / inter_cos: mean cosine over all same-class / different-class pairs,
    computed exactly from per-class sums (sum_{i,j in c} f_i.f_j = ||sum_{i in c} f_i||^2).
    """
    f = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    f = f.astype(np.float64)
    labels, y = np.unique(y, return_inverse=True)
    sums = np.stack([f[y == c].sum(0) for c in range(len(labels))])  # [C, D]
    counts = np.bincount(y).astype(np.float64)
    gram = sums @ sums.T  # [C, C]: sum of dot products over all (i in c, j in c') pairs
    same_pairs = (counts * (counts - 1)).sum()
    intra = (np.trace(gram) - counts.sum()) / same_pairs if same_pairs else float("nan")  # drop i == j
    diff_pairs = counts.sum() ** 2 - (counts ** 2).sum()
    inter = (gram.sum() - np.trace(gram)) / diff_pairs

    if len(f) > UNIFORMITY_MAX:
        f = f[np.random.default_rng(seed).choice(len(f), UNIFORMITY_MAX, replace=False)]
    n = len(f)
    kernel = np.exp(-2.0 * np.clip(2.0 - 2.0 * (f @ f.T), 0.0, None))  # [n, n], symmetric, diagonal 1
    uniformity = np.log((kernel.sum() - n) / (n * (n - 1)))  # mean over i != j == mean over i < j
    return {"alignment": float(2.0 - 2.0 * intra), "uniformity": float(uniformity),
            "intra_cos": float(intra), "inter_cos": float(inter)}
