"""Evaluation of a saved model on the in-domain splits and the public dev split.

Reports what the quality targets are stated in: per-label and per-language
precision / recall / F1 / PR-AUC, macro-F1 per language (over the labels that
occur in that language), the false-positive rate on hard negatives (any label
fired), expected calibration error, and abusive F1 per language on public dev.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifiers.dataset import Example
from classifiers.metrics import binary_report, expected_calibration_error
from classifiers.model import WarningShotModel


def _fired(model: WarningShotModel, ex: Example, score: dict[str, float]) -> list[str]:
    return [label for label in model.labels if score[label] >= model.thresholds.for_label(label, ex.lang)]


def _label_reports(model: WarningShotModel, rows: Sequence[Example], scores: Sequence[dict[str, float]]) -> dict:
    out = {}
    for i, label in enumerate(model.labels):
        truth = [ex.targets[i] for ex in rows]
        fired = [float(s[label] >= model.thresholds.for_label(label, ex.lang))
                 for ex, s in zip(rows, scores, strict=True)]
        # per-language thresholds make one cut-off per row; report on the decisions
        rep = binary_report(truth, fired, 0.5).as_dict()
        rep["pr_auc"] = binary_report(truth, [s[label] for s in scores], 0.5).pr_auc
        out[label] = rep
    return out


def email_metrics(model: WarningShotModel, rows: Sequence[Example], scores: Sequence[dict[str, float]]) -> dict:
    """All in-domain numbers for one split."""
    result: dict[str, Any] = {"emails": len(rows), "labels": _label_reports(model, rows, scores)}
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(rows):
        by_lang[ex.lang].append(i)
    languages = {}
    for lang in sorted(by_lang):
        idx = by_lang[lang]
        sub_rows, sub_scores = [rows[i] for i in idx], [scores[i] for i in idx]
        labels = _label_reports(model, sub_rows, sub_scores)
        present = [label for label in model.labels if labels[label]["support"]]
        hard = [i for i in idx if rows[i].hard_negative]
        languages[lang] = {
            "emails": len(idx),
            "labels": labels,
            "macro_f1": float(np.mean([labels[label]["f1"] for label in present])) if present else None,
            "hard_negatives": len(hard),
            "hard_negative_fpr": (float(np.mean([bool(_fired(model, rows[i], scores[i])) for i in hard]))
                                  if hard else None),
        }
    result["languages"] = languages
    present = [label for label in model.labels if result["labels"][label]["support"]]
    result["macro_f1"] = float(np.mean([result["labels"][label]["f1"] for label in present])) if present else None
    hard = [i for i, ex in enumerate(rows) if ex.hard_negative]
    result["hard_negatives"] = len(hard)
    result["hard_negative_fpr"] = (float(np.mean([bool(_fired(model, rows[i], scores[i])) for i in hard]))
                                   if hard else None)
    negatives = [i for i, ex in enumerate(rows) if not any(ex.targets)]
    result["negative_fpr"] = (float(np.mean([bool(_fired(model, rows[i], scores[i])) for i in negatives]))
                              if negatives else None)
    truth = [t for ex in rows for t in ex.targets]
    flat = [s[label] for s in scores for label in model.labels]
    result["ece"] = expected_calibration_error(truth, flat)
    result["ece_per_label"] = {label: expected_calibration_error([ex.targets[i] for ex in rows],
                                                                 [s[label] for s in scores])
                               for i, label in enumerate(model.labels)}
    return result


def public_metrics(model: WarningShotModel, rows: Sequence[Example], scores: Sequence[dict[str, float]]) -> dict:
    """Abusive precision / recall / F1 / PR-AUC per language on the public dev split."""
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(rows):
        by_lang[ex.lang].append(i)
    out = {}
    for lang in sorted(by_lang):
        idx = by_lang[lang]
        truth = [rows[i].targets[0] for i in idx]
        fired = [float(scores[i]["abusive"] >= model.thresholds.for_label("abusive", lang)) for i in idx]
        rep = binary_report(truth, fired, 0.5).as_dict()
        rep["pr_auc"] = binary_report(truth, [scores[i]["abusive"] for i in idx], 0.5).pr_auc
        rep["rows"] = len(idx)
        out[lang] = rep
    return out


def evaluate(model: WarningShotModel, emails: Sequence[Example], public: Sequence[Example]) -> dict:
    """Score both data sets and compute every metric; also returns the scoring speed."""
    result: dict[str, Any] = {"thresholds": {"default": dict(model.thresholds.default),
                                             "per_language": {k: dict(v) for k, v in
                                                              model.thresholds.per_language.items()}}}
    if emails:
        started = time.time()
        scores = model.predict([ex.text for ex in emails])
        result["emails_per_second"] = len(emails) / max(time.time() - started, 1e-9)
        result["in_domain"] = email_metrics(model, emails, scores)
        result["scores"] = [{"id": ex.id, "lang": ex.lang, "labels": list(ex.labels), "scores": s}
                            for ex, s in zip(emails, scores, strict=True)]
    if public:
        scores = model.predict([ex.text for ex in public])
        result["public_dev"] = public_metrics(model, public, scores)
    return result


def _f(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def format_report(result: dict, labels: Sequence[str]) -> str:
    """A plain-text table of the headline numbers."""
    lines = []
    dom = result.get("in_domain")
    if dom:
        lines.append(f"In-domain emails: {dom['emails']}   macro-F1 {_f(dom['macro_f1'])}   "
                     f"hard-negative FPR {_f(dom['hard_negative_fpr'])} (n={dom['hard_negatives']})   "
                     f"negative FPR {_f(dom['negative_fpr'])}   ECE {_f(dom['ece'])}")
        lines.append("")
        lines.append(f"{'label':14}{'support':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'PR-AUC':>8}")
        for label in labels:
            r = dom["labels"][label]
            lines.append(f"{label:14}{r['support']:8d}{_f(r['precision']):>8}{_f(r['recall']):>8}"
                         f"{_f(r['f1']):>8}{_f(r['pr_auc']):>8}")
        lines.append("")
        head = "".join(f"{label[:10] + ' F1':>15}" for label in labels)
        lines.append(f"{'lang':6}{'emails':>7}{'macroF1':>9}{head}{'hardneg FPR':>13}")
        for lang, r in dom["languages"].items():
            cells = "".join(f"{_f(r['labels'][lb]['f1']) if r['labels'][lb]['support'] else '   n/a':>11}"
                            f" ({r['labels'][lb]['support']:>2})" for lb in labels)
            fpr = f"{_f(r['hard_negative_fpr'])} ({r['hard_negatives']})"
            lines.append(f"{lang:6}{r['emails']:7d}{_f(r['macro_f1']):>9}{cells}{fpr:>13}")
    pub = result.get("public_dev")
    if pub:
        lines.append("")
        lines.append("Public dev (abusive vs none):")
        lines.append(f"{'lang':6}{'rows':>6}{'prec':>8}{'recall':>8}{'F1':>8}{'PR-AUC':>8}")
        for lang, r in pub.items():
            lines.append(f"{lang:6}{r['rows']:6d}{_f(r['precision']):>8}{_f(r['recall']):>8}{_f(r['f1']):>8}"
                         f"{_f(r['pr_auc']):>8}")
    return "\n".join(lines)
