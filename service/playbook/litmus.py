"""The litmus test: would this reply look good if it were published?

Every draft, and every text a human edits before approving, is scored by the
same classifier that reads incoming mail, with the same thresholds. If any
label fires, the draft is not saved. Lines quoted with ``>`` are the
customer's own words (the termination notice of an abusive sender quotes
them, as the playbook asks) and are left out: the test judges our words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from classifiers.interface import Thresholds

Score = Callable[[list[str]], list[dict[str, float]]]


@dataclass(frozen=True, slots=True)
class LitmusResult:
    scores: dict[str, float]
    fired: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.fired


def own_words(text: str) -> str:
    """The text without ``>``-quoted lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def litmus(text: str, language: str, *, score: Score, thresholds: Thresholds, labels: Sequence[str]) -> LitmusResult:
    scores = score([own_words(text)])[0]
    fired = tuple(label for label in labels if scores.get(label, 0.0) >= thresholds.for_label(label, language))
    return LitmusResult({k: round(float(v), 4) for k, v in scores.items()}, fired)


__all__ = ["LitmusResult", "Score", "litmus", "own_words"]
