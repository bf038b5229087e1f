"""From scores to what happens to a message: labels, keywords, folders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from classifiers.interface import LABELS, Thresholds
from service.settings import TaggingSettings

# When several labels want to move the message, the strongest wins
# (the playbook's order: legal > extortion > abusive).
STRENGTH: tuple[str, ...] = ("legal_threat", "extortion", "abusive")


@dataclass(frozen=True, slots=True)
class Decision:
    labels: tuple[str, ...]
    keywords: tuple[str, ...]
    gmail_labels: tuple[str, ...] = ()
    copy_to: tuple[str, ...] = ()
    move_to: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    def as_record(self) -> dict[str, Any]:
        return {
            "keywords": list(self.keywords),
            "gmail_labels": list(self.gmail_labels),
            "copy_to": list(self.copy_to),
            "move_to": self.move_to,
            "thresholds": dict(self.thresholds),
        }

    @classmethod
    def from_record(cls, labels: list[str], action: Mapping[str, Any]) -> Decision:
        return cls(
            labels=tuple(labels),
            keywords=tuple(action.get("keywords", ())),
            gmail_labels=tuple(action.get("gmail_labels", ())),
            copy_to=tuple(action.get("copy_to", ())),
            move_to=action.get("move_to"),
            thresholds=dict(action.get("thresholds", {})),
        )


def decide(
    scores: Mapping[str, float], language: str, thresholds: Thresholds, tagging: TaggingSettings
) -> Decision:
    used = {label: thresholds.for_label(label, language) for label in LABELS}
    labels = tuple(label for label in LABELS if scores.get(label, 0.0) >= used[label])
    routes = [tagging.routes[label] for label in sorted(labels, key=STRENGTH.index)]
    keywords = [tagging.scanned_keyword] + [r.keyword for r in routes]
    movers = [r.folder for r in routes if r.mode == "move"]
    move_to = movers[0] if movers else None
    # A weaker label's move becomes a copy, so its folder still gets the message.
    copies = [r.folder for r in routes if r.mode == "copy"] + movers[1:]
    return Decision(
        labels=labels,
        keywords=tuple(dict.fromkeys(keywords)),
        gmail_labels=tuple(r.gmail_label for r in routes if r.gmail_label),
        copy_to=tuple(dict.fromkeys(c for c in copies if c != move_to)),
        move_to=move_to,
        thresholds=used,
    )
