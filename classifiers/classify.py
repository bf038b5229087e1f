"""Batch classification of JSON Lines: the engine behind ``warningshot classify``.

Each input line is ``{"id", "text"}`` (text used as is) or ``{"id", "subject",
"body"}`` (reduced to what the model reads with ``model_text``). A bad line is
reported with its line number and skipped; the others are still classified.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from classifiers.model import WarningShotModel


@dataclass(frozen=True, slots=True)
class Item:
    """One valid input line."""

    line: int
    id: Any
    text: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """An input line that cannot be classified, and why."""

    line: int
    reason: str


def parse_line(number: int, raw: str) -> Item | BadLine:
    """Validate one JSON Lines record."""
    try:
        row = json.loads(raw)
    except ValueError as exc:
        return BadLine(number, f"not valid JSON ({exc})")
    if not isinstance(row, dict):
        return BadLine(number, "expected a JSON object")
    if "id" not in row:
        return BadLine(number, 'missing "id"')
    if isinstance(row.get("text"), str):
        return Item(number, row["id"], row["text"])
    subject, body = row.get("subject", ""), row.get("body")
    if isinstance(body, str) and isinstance(subject, str | None):
        from service.mail.parse import model_text

        return Item(number, row["id"], model_text(subject or "", body))
    return BadLine(number, 'needs a string "text", or a string "body" (and optional "subject")')


def read_items(lines: Iterable[str]) -> Iterator[Item | BadLine]:
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield parse_line(number, raw)


def classify_items(model: WarningShotModel, items: list[Item]) -> list[dict[str, Any]]:
    """Scores, fired labels (per-language thresholds) and evidence for each item."""
    from service.mail.language import detect_language

    scores = model.predict([item.text for item in items])
    results = []
    for item, score in zip(items, scores, strict=True):
        language = detect_language(item.text)
        labels = [label for label in model.labels if score[label] >= model.thresholds.for_label(label, language)]
        results.append({
            "id": item.id,
            "language": language,
            "scores": {label: round(score[label], 6) for label in model.labels},
            "labels": labels,
            "evidence": model.evidence(item.text, labels) if labels else {},
        })
    return results


def run(model: WarningShotModel, source: IO[str], sink: IO[str], errors: IO[str], batch: int = 32) -> int:
    """Classify every line of ``source`` into ``sink``; returns the number of bad lines."""
    bad = 0
    pending: list[Item] = []

    def flush() -> None:
        for result in classify_items(model, pending):
            sink.write(json.dumps(result, ensure_ascii=False) + "\n")
        sink.flush()
        pending.clear()

    for entry in read_items(source):
        if isinstance(entry, BadLine):
            bad += 1
            errors.write(f"line {entry.line}: {entry.reason}\n")
            continue
        pending.append(entry)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return bad
