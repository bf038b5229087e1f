"""Threshold choice and the binary metrics behind `warningshot evaluate`."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.metrics import binary_report, choose_threshold


def _ranked(pattern: str) -> tuple[list[float], list[float]]:
    """Scores falling from 1.0 in steps of 0.01, with truth from ``pattern`` ('P' positive, 'N' negative)."""
    truth = [1.0 if c == "P" else 0.0 for c in pattern]
    scores = [1.0 - 0.01 * i for i in range(len(pattern))]
    return truth, scores


def test_separable_scores_are_cut_between_the_classes():
    truth, scores = _ranked("P" * 10 + "N" * 10)
    threshold = choose_threshold(truth, scores)
    assert scores[9] > threshold > scores[10]
    assert binary_report(truth, scores, threshold).f1 == 1.0


def test_the_f1_best_cut_wins_over_a_lower_one_that_barely_keeps_the_precision():
    # 27 positives, 3 negatives, then one more positive: cutting after it keeps precision
    # 28/31 = 0.903 but F1 0.918; cutting after the 27th gives precision 1.0 and F1 0.947.
    truth, scores = _ranked("P" * 27 + "NNN" + "P" + "PN" + "N" * 40)
    threshold = choose_threshold(truth, scores, min_precision=0.90)
    assert scores[26] > threshold > scores[27]
    report = binary_report(truth, scores, threshold)
    assert report.precision == 1.0 and report.f1 == pytest.approx(2 * 27 / (27 + 29))


def test_without_any_cut_reaching_the_precision_the_f1_best_is_taken():
    truth, scores = _ranked("NPNPNPNP" + "N" * 10)  # precision never passes 0.5
    threshold = choose_threshold(truth, scores, min_precision=0.99)
    f1 = {t: binary_report(truth, scores, t).f1 for t in np.linspace(0.0, 1.0, 201)}
    assert binary_report(truth, scores, threshold).f1 == pytest.approx(max(f1.values()))


def test_one_class_only_gives_the_neutral_threshold():
    assert choose_threshold([0.0, 0.0], [0.2, 0.7]) == 0.5
    assert choose_threshold([1.0, 1.0], [0.2, 0.7]) == 0.5
