"""Test-set metrics of a classifier from its predicted probabilities, and the signs of a cell
whose training collapsed.

numpy, not scikit-learn: importing scikit-learn costs every training job about a second of
start-up. tests/test_metrics.py checks each against scikit-learn.
"""
from __future__ import annotations

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x with ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for end in np.flatnonzero(np.diff(sorted_x)).tolist() + [len(x) - 1]:
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney statistic: P(score of a positive > score of a negative), ties 1/2."""
    pos = positive.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    r = _ranks(scores.astype(np.float64))
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_f1(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in labels or preds of F1 = 2 tp / (2 tp + fp + fn)."""
    scores = []
    for c in range(n_classes):
        tp = np.sum((preds == c) & (labels == c))
        fp, fn = np.sum((preds == c) & (labels != c)), np.sum((preds != c) & (labels == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    """labels [N] in 0..C-1, probs [N, C] -> accuracy, macro-F1, ROC-AUC (one-vs-rest macro for
    C > 2; None when the test set lacks a class, since AUC is undefined then)."""
    labels = np.asarray(labels)
    preds = probs.argmax(1)
    n_classes = probs.shape[1]
    auc = None
    if len(np.unique(labels)) == n_classes:
        auc = (binary_auc(labels == 1, probs[:, 1]) if n_classes == 2 else
               float(np.mean([binary_auc(labels == c, probs[:, c]) for c in range(n_classes)])))
    return {"accuracy": float(np.mean(preds == labels)), "macro_f1": macro_f1(labels, preds, n_classes),
            "roc_auc": auc}


MAJORITY_SHARE = 0.95  # near one class: at least this share of the predictions is one class ...
MIX_DISTANCE = 0.5  # ... or half the predictions would have to change class to match the true mix
CHANCE_Z = 2.33  # accuracy not above the best constant predictor by this many binomial SEs (1%, one-sided)
TREND_Z = 2.33  # the CE's last quarter below its first by this many SEs of its batch noise (1%, one-sided)
MIN_STEPS = 8  # fewer optimizer steps say nothing of a trend


def collapse(preds: np.ndarray, labels: np.ndarray, ce: np.ndarray, shares: dict[str, float], ce_term: str,
             names: list[str]) -> dict | None:
    """Why a cell is degenerate, or None. Its test predictions are near one class (a share of at
    least MAJORITY_SHARE where the true labels are not), or their class mix is far from the true
    one (total-variation distance >= MIX_DISTANCE), or its accuracy is not above the best constant
    predictor's (the true majority share) by CHANCE_Z binomial SEs; or its classification term
    `ce` (one value per optimizer step) shows no downward trend: the mean of the last quarter of
    the run is not below the first quarter's by TREND_Z standard errors of the curve's own batch
    noise (its SD from successive differences, which a trend does not inflate). Names the term
    that was the largest share of its loss (`shares`: term -> mean share of the weighted loss,
    the classification terms counted as `ce_term`)."""
    preds, labels, ce = np.asarray(preds), np.asarray(labels), np.asarray(ce, dtype=np.float64)
    k = max(len(names), int(preds.max(initial=0)) + 1, int(labels.max(initial=0)) + 1)
    pred_mix = np.bincount(preds, minlength=k) / len(preds)
    true_mix = np.bincount(labels, minlength=k) / len(labels)
    top = int(pred_mix.argmax())
    one_class = bool(pred_mix[top] >= MAJORITY_SHARE and true_mix.max() < MAJORITY_SHARE)
    distance = float(0.5 * np.abs(pred_mix - true_mix).sum())
    mix_off = distance >= MIX_DISTANCE and not one_class
    chance, acc, n = float(true_mix.max()), float(np.mean(preds == labels)), len(labels)
    near_chance = acc - chance < CHANCE_Z * np.sqrt(chance * (1 - chance) / n) if chance < 1 else False
    stuck, drop, noise = _no_trend(ce)
    if not (one_class or mix_off or near_chance or stuck):
        return None
    dominant = max(shares, key=shares.get) if shares else ce_term
    why = [f"predicts {names[top]!r} for {pred_mix[top]:.0%} of the test set" if one_class else None,
           f"its predicted class mix is {distance:.2f} (total variation) from the true one" if mix_off else None,
           f"accuracy {acc:.3f} is not above chance ({chance:.3f}, the majority class)" if near_chance else None,
           f"{ce_term} shows no downward trend (last quarter {drop:+.3f} vs the first, batch noise {noise:.3f})"
           if stuck else None]
    weight = (f"{dominant} was {shares[dominant]:.0%} of its loss" if dominant != ce_term or len(shares) > 1
              else "its loss is the cross-entropy alone (the recipe failed, not an auxiliary term)")
    return {"one_class": one_class, "mix_distance": distance, "near_chance": bool(near_chance),
            "ce_stuck": bool(stuck), "dominant_term": dominant, "dominant_share": float(shares.get(dominant, 1.0)),
            "reason": "; ".join(w for w in why if w) + f"; {weight}"}


def near_chance(val_accuracy: float, val_labels: np.ndarray) -> dict:
    """Whether a cell's validation accuracy is near chance: at most two binomial standard errors
    above the majority class's share of the validation split (what predicting that one class
    scores; 1/C for balanced classes). Such a cell has barely learned, whatever its loss says, and
    a comparison with it says little."""
    labels = np.asarray(val_labels)
    chance = float(np.bincount(labels).max() / len(labels))
    margin = 2 * np.sqrt(chance * (1 - chance) / len(labels))
    return {"val_chance": chance, "near_chance_val": bool(val_accuracy <= chance + margin)}


def _no_trend(ce: np.ndarray) -> tuple[bool, float, float]:
    """(no downward trend, last-quarter mean − first-quarter mean, batch-noise SD) of a curve."""
    if len(ce) < MIN_STEPS:
        return False, float("nan"), float("nan")
    q = len(ce) // 4
    first, last = ce[:q], ce[-q:]
    noise = float(np.sqrt(np.mean(np.diff(ce) ** 2) / 2))
    drop = float(last.mean() - first.mean())
    se = noise * np.sqrt(2 / q)
    return bool(drop >= 0 if se == 0 else -drop / se < TREND_Z), drop, noise
