"""Test-set metrics of a classifier from its predicted probabilities."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    """labels [N] in 0..C-1, probs [N, C] -> accuracy, macro-F1, ROC-AUC (one-vs-rest for C > 2;
    None when the test set lacks a class, since AUC is undefined then)."""
    preds = probs.argmax(1)
    out = {"accuracy": accuracy_score(labels, preds),
           "macro_f1": f1_score(labels, preds, average="macro"),
           "roc_auc": None}
    if len(np.unique(labels)) == probs.shape[1]:
        out["roc_auc"] = (roc_auc_score(labels, probs[:, 1]) if probs.shape[1] == 2
                          else roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return {k: (None if v is None else float(v)) for k, v in out.items()}
