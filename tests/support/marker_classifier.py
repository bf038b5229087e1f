"""A test double for the Classifier protocol, used only by the test suite.

A label fires when its marker (``[[abusive]]``, ``[[extortion]]``,
``[[legal_threat]]``) is in the text; ``[[crash]]`` raises, to exercise
retries and quarantine. It lets pipeline tests run in milliseconds and say
exactly which message should get which tag. It is never shipped: the daemon
uses it only when a test points ``model.factory`` at it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from classifiers.interface import LABELS, Thresholds


class PoisonTextError(RuntimeError):
    pass


class MarkerClassifier:
    labels = LABELS
    thresholds = Thresholds({label: 0.5 for label in LABELS})

    def __init__(self, version: str = "") -> None:
        self.version = version

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        # WS_TEST_DELAY slows the model down so a test can kill the daemon mid-batch.
        time.sleep(float(os.environ.get("WS_TEST_DELAY", "0")) * len(texts))
        if any("[[crash]]" in t for t in texts):
            raise PoisonTextError("poison text")
        return [{label: 0.97 if f"[[{label}]]" in t else 0.02 for label in LABELS} for t in texts]

    def evidence(self, text: str, labels: Sequence[str]) -> dict[str, str]:
        lines = text.splitlines()
        return {label: next((ln for ln in lines if f"[[{label}]]" in ln), "") for label in labels}


def build(_settings: object) -> MarkerClassifier:
    # WS_TEST_MODEL_FILE names the "model version" a reload picks up; "broken" fails to load.
    path = os.environ.get("WS_TEST_MODEL_FILE")
    version = open(path, encoding="utf-8").read().strip() if path else ""  # noqa: SIM115
    if version == "broken":
        raise RuntimeError("the model files are broken")
    return MarkerClassifier(version)
