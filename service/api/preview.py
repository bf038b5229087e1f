"""What a threshold change would have done to recent mail, from the stored scores.

No model call: every handled message keeps the scores it was given, and the
decision is only ``score >= threshold`` per label (as in
:func:`service.decision.decide`), so re-deciding 100,000 messages is a few
vectorised comparisons over the :class:`~service.api.score_index.ScoreIndex`.
"Current" means the thresholds in force now applied to the same scores (not
the labels given at the time, which older thresholds may have produced), so
the difference shown is the proposed change alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.interface import LABELS, Thresholds
from service.api.score_index import Snapshot


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts per language: messages, flagged, and one count per label."""

    per_language: dict[str, tuple[int, int, tuple[int, ...]]]

    @classmethod
    def of(cls, flags: np.ndarray, language: np.ndarray, languages: tuple[str, ...]) -> Tally:
        size = len(languages)
        messages = np.bincount(language, minlength=size)
        flagged = np.bincount(language, weights=flags.any(axis=1), minlength=size)
        per_label = [np.bincount(language, weights=flags[:, j], minlength=size) for j in range(len(LABELS))]
        return cls({
            lang: (int(messages[i]), int(flagged[i]), tuple(int(column[i]) for column in per_label))
            for i, lang in enumerate(languages) if messages[i]
        })

    def as_dict(self) -> dict[str, Any]:
        counts = self.per_language.values()
        return {
            "flagged": sum(c[1] for c in counts),
            "by_label": {label: sum(c[2][j] for c in counts) for j, label in enumerate(LABELS)},
            "by_language": {
                lang: {"messages": c[0], "flagged": c[1], "by_label": dict(zip(LABELS, c[2], strict=True))}
                for lang, c in sorted(self.per_language.items())
            },
        }


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    language: str
    scores: dict[str, float]
    before: list[str]
    after: list[str]


@dataclass(frozen=True, slots=True)
class Preview:
    messages: int
    current: Tally
    proposed: Tally
    changed: int
    changes: list[Change]


def _limits(thresholds: Thresholds, languages: tuple[str, ...]) -> np.ndarray:
    """One row of thresholds per language code, one column per label."""
    table = [[thresholds.for_label(label, lang) for label in LABELS] for lang in languages]
    return np.array(table, np.float64).reshape(len(languages), len(LABELS))


def preview(snap: Snapshot, current: Thresholds, proposed: Thresholds, *, max_changes: int) -> Preview:
    """Re-decide every message of ``snap`` under both sets of thresholds."""
    before = snap.scores >= _limits(current, snap.languages)[snap.language]
    after = snap.scores >= _limits(proposed, snap.languages)[snap.language]
    changed = np.flatnonzero((before != after).any(axis=1))
    # Newest first: by received time, then id, both descending.
    listed = changed[np.lexsort((-snap.ids[changed], -snap.received[changed]))][:max_changes]
    changes = [
        Change(
            id=int(snap.ids[i]),
            language=snap.languages[snap.language[i]],
            scores=dict(zip(LABELS, snap.scores[i].tolist(), strict=True)),
            before=[label for label, flag in zip(LABELS, before[i], strict=True) if flag],
            after=[label for label, flag in zip(LABELS, after[i], strict=True) if flag],
        )
        for i in listed
    ]
    return Preview(
        messages=len(snap.ids),
        current=Tally.of(before, snap.language, snap.languages),
        proposed=Tally.of(after, snap.language, snap.languages),
        changed=len(changed),
        changes=changes,
    )
