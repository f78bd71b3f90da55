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


def collapse(preds: np.ndarray, ce: np.ndarray, shares: dict[str, float], ce_term: str,
             names: list[str]) -> dict | None:
    """Why a cell is degenerate, or None: it predicts one class only, or its classification term
    never fell below where it started (`ce`, one value per optimizer step, smoothed over a tenth
    of the run). Names the term that was the largest share of its loss (`shares`: term -> mean
    share of the weighted loss, the classification terms counted as `ce_term`)."""
    classes = np.unique(preds)
    one_class = len(classes) == 1
    window = max(1, len(ce) // 10)
    start, best = float(np.mean(ce[:window])), float(np.min(_smooth(ce, window)))
    stuck = len(ce) >= 2 * window and best >= start - 0.01 * abs(start)
    if not (one_class or stuck):
        return None
    dominant = max(shares, key=shares.get) if shares else ce_term
    why = [f"predicts only {names[int(classes[0])]!r}" if one_class else None,
           f"{ce_term} never fell below its start ({start:.3f})" if stuck else None]
    weight = (f"{dominant} was {shares[dominant]:.0%} of its loss" if dominant != ce_term or len(shares) > 1
              else "its loss is the cross-entropy alone (the recipe failed, not an auxiliary term)")
    return {"one_class": bool(one_class), "ce_stuck": bool(stuck), "dominant_term": dominant,
            "dominant_share": float(shares.get(dominant, 1.0)), "reason": "; ".join(w for w in why if w) + f"; {weight}"}


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    return np.convolve(x, np.ones(window) / window, mode="valid") if len(x) >= window else x


def near_chance(val_accuracy: float, val_labels: np.ndarray) -> dict:
    """Whether a cell's validation accuracy is near chance: at most two binomial standard errors
    above the majority class's share of the validation split (what predicting that one class
    scores; 1/C for balanced classes). Such a cell has barely learned, whatever its loss says, and
    a comparison with it says little."""
    labels = np.asarray(val_labels)
    chance = float(np.bincount(labels).max() / len(labels))
    margin = 2 * np.sqrt(chance * (1 - chance) / len(labels))
    return {"val_chance": chance, "near_chance_val": bool(val_accuracy <= chance + margin)}
