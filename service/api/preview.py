"""What a threshold change would have done to recent mail, from the stored scores.

No model call: every handled message keeps the scores it was given, and the
decision is only ``score >= threshold`` per label, so re-deciding 100,000
messages is a loop over numbers. "Current" means the thresholds in force now
applied to the same scores (not the labels given at the time, which older
thresholds may have produced), so the difference is the proposed change alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from classifiers.interface import LABELS, Thresholds

UNDETERMINED = "und"


@dataclass(slots=True)
class Tally:
    """Counts per language: [messages, flagged, one count per label in LABELS order]."""

    per_language: dict[str, list[int]] = field(default_factory=dict)

    def add(self, language: str, flags: tuple[bool, ...]) -> None:
        counts = self.per_language.get(language)
        if counts is None:
            counts = self.per_language[language] = [0] * (2 + len(LABELS))
        counts[0] += 1
        if any(flags):
            counts[1] += 1
        for i, flag in enumerate(flags):
            if flag:
                counts[2 + i] += 1

    def as_dict(self) -> dict[str, Any]:
        by_language = {
            lang: {"messages": c[0], "flagged": c[1], "by_label": dict(zip(LABELS, c[2:], strict=True))}
            for lang, c in sorted(self.per_language.items())
        }
        return {
            "flagged": sum(c[1] for c in self.per_language.values()),
            "by_label": {label: sum(c[2 + i] for c in self.per_language.values()) for i, label in enumerate(LABELS)},
            "by_language": by_language,
        }


@dataclass(slots=True)
class Change:
    id: int
    language: str
    scores: Mapping[str, float]
    before: list[str]
    after: list[str]


@dataclass(slots=True)
class Preview:
    messages: int
    current: Tally
    proposed: Tally
    changed: int
    changes: list[Change]


def _limits(thresholds: Thresholds, cache: dict[str, tuple[float, ...]], language: str) -> tuple[float, ...]:
    limits = cache.get(language)
    if limits is None:
        limits = cache[language] = tuple(thresholds.for_label(label, language) for label in LABELS)
    return limits


def preview(
    rows: Iterable[tuple[int, str | None, Any, Any]],
    current: Thresholds,
    proposed: Thresholds,
    *,
    max_changes: int,
) -> Preview:
    """Re-decide ``rows`` (id, language, scores, labels) under both sets of thresholds."""
    now_cache: dict[str, tuple[float, ...]] = {}
    new_cache: dict[str, tuple[float, ...]] = {}
    before_tally, after_tally = Tally(), Tally()
    changes: list[Change] = []
    messages = changed = 0
    for record_id, language, scores, _labels in rows:
        if not isinstance(scores, dict):
            continue
        lang = language or UNDETERMINED
        try:
            values = tuple(float(scores.get(label, 0.0)) for label in LABELS)
        except (TypeError, ValueError):
            continue  # a score the store should never hold; not worth failing the preview
        before = tuple(v >= t for v, t in zip(values, _limits(current, now_cache, lang), strict=True))
        after = tuple(v >= t for v, t in zip(values, _limits(proposed, new_cache, lang), strict=True))
        messages += 1
        before_tally.add(lang, before)
        after_tally.add(lang, after)
        if before != after:
            changed += 1
            if len(changes) < max_changes:
                changes.append(Change(
                    record_id, lang, scores,
                    [label for label, f in zip(LABELS, before, strict=True) if f],
                    [label for label, f in zip(LABELS, after, strict=True) if f],
                ))
    return Preview(messages, before_tally, after_tally, changed, changes)
