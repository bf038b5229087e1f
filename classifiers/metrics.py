"""Metrics shared by training (threshold choice) and evaluation.

Kept free of torch so the numbers can be recomputed from a JSON dump of scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class BinaryReport:
    """Precision, recall, F1 and PR-AUC of one label on one slice of data."""

    support: int
    predicted: int
    precision: float
    recall: float
    f1: float
    pr_auc: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"support": self.support, "predicted": self.predicted, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "pr_auc": self.pr_auc}


def binary_report(truth: Sequence[float], scores: Sequence[float], threshold: float) -> BinaryReport:
    """Report at ``threshold``; PR-AUC (average precision) is None without positives."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    pred = s >= threshold
    tp = int((pred & y).sum())
    precision = tp / pred.sum() if pred.sum() else (1.0 if not y.any() else 0.0)
    recall = tp / y.sum() if y.sum() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pr_auc = None
    if y.any() and len(y):
        from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

        pr_auc = float(average_precision_score(y, s))
    return BinaryReport(int(y.sum()), int(pred.sum()), float(precision), float(recall), float(f1), pr_auc)


def choose_threshold(truth: Sequence[float], scores: Sequence[float], min_precision: float = 0.90) -> float:
    """The F1-best threshold among those reaching ``min_precision``, else the F1-best of all.

    Not simply the lowest threshold reaching the precision: precision is
    jagged at low scores, and the lowest cut that touches 0.90 sat in that
    noisy tail (legal_threat 0.117 for the first model), which let through
    hard negatives that a slightly higher cut stops at no cost in recall on
    dev. Ties in F1 go to the lower threshold (more recall). The threshold is
    placed halfway between the chosen dev score and the next lower one, so it
    does not sit exactly on a dev example's score.
    """
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if not y.any() or y.all():
        return 0.5
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    predicted = np.arange(1, len(s) + 1)
    # only cut between distinct scores: a threshold admits every tie
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    precision = tp / predicted
    recall = tp / y.sum()
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    ok = np.flatnonzero(last_of_tie & (precision >= min_precision))
    if not ok.size:
        ok = np.flatnonzero(last_of_tie)
    best = f1[ok].max()
    idx = int(ok[f1[ok] >= best - 1e-12].max())  # the lowest threshold with that F1
    lower = s_sorted[idx + 1] if idx + 1 < len(s_sorted) else max(s_sorted[idx] - 0.05, 0.0)
    return float((s_sorted[idx] + lower) / 2)


def expected_calibration_error(truth: Sequence[float], scores: Sequence[float], bins: int = 10) -> float:
    """ECE over equal-width probability bins (binary, one label or all labels pooled)."""
    y = np.asarray(truth, dtype=float)
    s = np.asarray(scores, dtype=float)
    if not len(y):
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(s[sel].mean() - y[sel].mean())
    return float(ece)
