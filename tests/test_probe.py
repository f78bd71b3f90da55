"""Probes: separated blobs score high, noise scores at chance, 1-NN matches scikit-learn."""
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from contrastlab.analysis import probe as probe_module
from contrastlab.plan.config import ConfigError, ProbeConfig, validate
from contrastlab.analysis.probe import ProbeSettings, alignment_uniformity, folds_of, nn1_predict, probe

FAST = ProbeSettings(folds=5, seed=0, n_jobs=2, kmeans_n_init=3)


def blobs(n_per_class: int, n_classes: int, dim: int = 16, sep: float = 8.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim)) * sep
    y = np.repeat(np.arange(n_classes), n_per_class)
    return (centers[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def test_probe_on_separated_blobs_scores_near_perfect():
    x, y = blobs(150, 2)
    m = probe(x, y, FAST)
    assert m["svm_acc"] > 0.95 and m["knn1_acc"] > 0.95
    assert m["kmeans_ari"] > 0.9 and m["kmeans_nmi"] > 0.9
    assert m["silhouette"] > 0.5
    assert m["intra_cos"] > m["inter_cos"]
    assert all(isinstance(v, float) for v in m.values())


def test_probe_on_random_embeddings_with_random_labels_is_at_chance():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 32)), rng.integers(0, 2, 400)
    m = probe(x, y, FAST)
    assert m["svm_acc"] < 0.65 and m["knn1_acc"] < 0.65
    assert abs(m["kmeans_ari"]) < 0.05
    assert abs(m["silhouette"]) < 0.05


def test_probe_handles_three_classes_and_string_labels():
    x, y = blobs(80, 3)
    m = probe(x, np.array(["neg", "neu", "pos"])[y], FAST)
    assert m["svm_acc"] > 0.95 and m["kmeans_ari"] > 0.9


def test_probe_is_seeded():
    x, y = blobs(100, 2, sep=0.5, seed=4)
    assert probe(x, y, FAST) == probe(x, y, FAST)


def test_matrix_product_1nn_equals_sklearn_kneighbors_on_the_same_folds():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 20))
    y = (x[:, 0] + 0.8 * rng.normal(size=300) > 0).astype(int)  # overlapping: errors exist
    ours, ref = [], []
    for train, test in folds_of(y, 5, seed=0):
        ours.append(np.mean(nn1_predict(x[train], y[train], x[test]) == y[test]))
        ref.append(KNeighborsClassifier(1).fit(x[train], y[train]).score(x[test], y[test]))
    assert np.allclose(ours, ref)
    assert 0.55 < np.mean(ref) < 0.95  # not a trivial case
    assert probe(x, y, FAST)["knn1_acc"] == pytest.approx(np.mean(ref))


def test_alignment_uniformity_hand_checked_on_four_points():
    # unit vectors at 0, 90 (class 0) and 180, 270 degrees (class 1); norms are irrelevant
    x = np.array([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0], [0.0, -1.0]])
    y = np.array([0, 0, 1, 1])
    m = alignment_uniformity(x, y)
    # same-class pairs are 90 deg apart: |f_i - f_j|^2 = 2, cos = 0
    assert m["alignment"] == pytest.approx(2.0)
    assert m["intra_cos"] == pytest.approx(0.0)
    # different-class pairs: two at 90 deg (cos 0), two at 180 deg (cos -1) per class pair
    assert m["inter_cos"] == pytest.approx(-0.5)
    # the 6 pairs: 4 at distance^2 2 and 2 at distance^2 4
    assert m["uniformity"] == pytest.approx(np.log((4 * np.exp(-4.0) + 2 * np.exp(-8.0)) / 6))


def test_unknown_probe_config_key_is_named():
    with pytest.raises(ConfigError, match=r"probe\.fold: unknown key; did you mean folds"):
        validate(ProbeConfig, {"fold": 3}, "config.yaml", ("probe",))
    assert validate(ProbeConfig, {"folds": 3}, "config.yaml", ("probe",)).folds == 3


@pytest.mark.parametrize("n_classes", [2, 3])
def test_svm_accuracy_equals_scikit_learn_pipeline_cross_validated_on_the_same_folds(n_classes):
    """The per-(fold, class) tasks give LinearSVC's own one-vs-rest predictions."""
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x, y = blobs(120, n_classes, dim=12, sep=0.6, seed=3)  # overlapping: errors exist
    folds = folds_of(y, 5, seed=0)
    ref = cross_val_score(make_pipeline(StandardScaler(), LinearSVC(dual=False)), x, y, cv=folds).mean()
    ours = probe(x, y, FAST)["svm_acc"]
    assert 0.5 < ref < 0.99
    assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_svm_scaler_is_fitted_on_each_train_fold_only(monkeypatch, n_classes):
    """Standardising with statistics of all rows would leak the test fold into the SVM: every
    StandardScaler the probe fits must see exactly one fold's train rows, once per fold."""
    x, y = blobs(60, n_classes, dim=6, sep=1.0, seed=5)
    row_of = {r.tobytes(): i for i, r in enumerate(x)}
    assert len(row_of) == len(x)
    seen = []

    class Recording(probe_module.StandardScaler):
        def fit(self, X, y=None, sample_weight=None):
            seen.append(sorted(row_of[r.tobytes()] for r in np.asarray(X)))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(probe_module, "StandardScaler", Recording)
    probe(x, y, FAST)
    trains = [sorted(train.tolist()) for train, _ in folds_of(np.unique(y, return_inverse=True)[1], 5, seed=0)]
    assert sorted(seen) == sorted(trains)
    assert all(len(s) < len(x) for s in seen)

