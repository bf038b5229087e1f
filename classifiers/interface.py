"""What the pipeline expects of a classifier.

The daemon, ``scan`` and the API call a :class:`Classifier`; the shipped
fine-tuned model implements it, and so may a user's own model loaded through
``model.factory`` in the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

LABELS: tuple[str, ...] = ("abusive", "extortion", "legal_threat")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-label decision thresholds, with optional per-language overrides."""

    default: Mapping[str, float]
    per_language: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def for_label(self, label: str, language: str) -> float:
        override = self.per_language.get(language, {})
        if label in override:
            return override[label]
        return self.default[label]

    def merged(self, other: Thresholds | None) -> Thresholds:
        """These thresholds with ``other``'s values taking precedence."""
        if other is None:
            return self
        per_language = {lang: dict(v) for lang, v in self.per_language.items()}
        for lang, values in other.per_language.items():
            per_language.setdefault(lang, {}).update(values)
        return Thresholds({**self.default, **other.default}, per_language)


@runtime_checkable
class Classifier(Protocol):
    """Scores texts for each label; thresholds are applied by the caller."""

    labels: tuple[str, ...]
    thresholds: Thresholds

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return, for each text, the probability of every label."""
        ...

    def evidence(self, text: str, labels: Sequence[str]) -> dict[str, str]:
        """Return, for each of ``labels``, the sentence of ``text`` that scores highest."""
        ...


def model_version(classifier: Classifier) -> str:
    """What to call a model in records, logs and API answers: its registry version, else its class."""
    return str(getattr(classifier, "version", "") or type(classifier).__name__)
