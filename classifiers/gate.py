"""The promotion gate: may a retrained candidate replace the active model?

A pure function of two evaluations on the same fixed test split (the
``in_domain`` part of :func:`classifiers.evaluate.evaluate`'s result). The
candidate passes when

* macro-F1 over all test emails does not drop by more than ``tolerance``;
* macro-F1 of every language with at least ``min_emails`` test emails does not
  drop by more than ``tolerance`` (smaller languages are too noisy to judge:
  with 20 emails one email moves macro-F1 by several points);
* the false-positive rate on hard negatives (any label fired on a hard
  negative) does not rise by more than ``fpr_tolerance``.

A candidate equal to the active model passes; so does a better one. Every
check is kept with its old and new value, so a refusal says exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Means over the same emails can differ in the last bits when summed in another order.
_EPSILON = 1e-9

MACRO_F1 = "macro_f1"
HARD_NEGATIVE_FPR = "hard_negative_fpr"
TEST_SET = "test_set"
ALL = "all"


@dataclass(frozen=True, slots=True)
class GateConfig:
    """How much worse a candidate may be; the defaults allow no loss at all."""

    min_emails: int = 40
    tolerance: float = 0.0
    fpr_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.min_emails < 1:
            raise ValueError("min_emails must be at least 1")
        if self.tolerance < 0 or self.fpr_tolerance < 0:
            raise ValueError("tolerances cannot be negative")


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison: ``metric`` on ``scope`` (``all`` or a language), old vs new."""

    metric: str
    scope: str
    old: float | None
    new: float | None
    passed: bool
    emails: int = 0

    def describe(self) -> str:
        where = "all languages" if self.scope == ALL else self.scope
        if self.metric == TEST_SET:
            return (f"test set differs ({where}): {_count(self.old)} emails for the active model, "
                    f"{_count(self.new)} for the candidate")
        old = "n/a" if self.old is None else f"{self.old:.3f}"
        new = "n/a" if self.new is None else f"{self.new:.3f}"
        if self.metric == MACRO_F1:
            return f"macro-F1 {where} ({self.emails} emails): {old} -> {new}"
        return f"hard-negative FPR {where} ({self.emails} hard negatives): {old} -> {new}"


def _count(value: float | None) -> str:
    return "no" if value is None else str(int(value))


@dataclass(frozen=True, slots=True)
class GateResult:
    """Every check and whether the candidate passed them all."""

    checks: tuple[Check, ...]
    config: GateConfig

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "config": asdict(self.config),
                "checks": [asdict(check) for check in self.checks],
                "failed": [check.describe() for check in self.failed]}


def _not_worse(old: float | None, new: float | None, allowed: float, higher_is_better: bool) -> bool:
    if old is None:
        return True  # nothing to lose
    if new is None:
        return False
    if higher_is_better:
        return new >= old - allowed - _EPSILON
    return new <= old + allowed + _EPSILON


def judge(active: Mapping[str, Any], candidate: Mapping[str, Any], config: GateConfig | None = None) -> GateResult:
    """Compare two ``in_domain`` evaluations on one test split; see the module docstring for the rules."""
    config = config or GateConfig()
    checks: list[Check] = []
    if active.get("emails") != candidate.get("emails"):
        checks.append(Check(TEST_SET, ALL, active.get("emails"), candidate.get("emails"), False))
    checks.append(Check(MACRO_F1, ALL, active.get("macro_f1"), candidate.get("macro_f1"),
                        _not_worse(active.get("macro_f1"), candidate.get("macro_f1"), config.tolerance, True),
                        int(active.get("emails") or 0)))
    old_langs: Mapping[str, Any] = active.get("languages") or {}
    new_langs: Mapping[str, Any] = candidate.get("languages") or {}
    for lang in sorted(old_langs):
        old = old_langs[lang]
        if (old.get("emails") or 0) < config.min_emails:
            continue
        new = new_langs.get(lang) or {}
        if new.get("emails") != old.get("emails"):
            checks.append(Check(TEST_SET, lang, old.get("emails"), new.get("emails"), False))
        if old.get("macro_f1") is None:
            continue
        checks.append(Check(MACRO_F1, lang, old.get("macro_f1"), new.get("macro_f1"),
                            _not_worse(old.get("macro_f1"), new.get("macro_f1"), config.tolerance, True),
                            int(old["emails"])))
    if active.get("hard_negative_fpr") is not None:
        checks.append(Check(HARD_NEGATIVE_FPR, ALL, active.get("hard_negative_fpr"),
                            candidate.get("hard_negative_fpr"),
                            _not_worse(active.get("hard_negative_fpr"), candidate.get("hard_negative_fpr"),
                                       config.fpr_tolerance, False),
                            int(active.get("hard_negatives") or 0)))
    return GateResult(tuple(checks), config)
