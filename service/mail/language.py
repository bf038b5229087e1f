"""Language of a mail's text, for per-language thresholds and reporting.

py3langid is offline, small and fast (a fraction of a millisecond per KB).
Its model knows some regional variants under ISO 639-3 codes (Moroccan and
Egyptian Arabic, Biblical Hebrew...); their probabilities are added to the
ISO 639-1 language they belong to before deciding, because a Cairo customer's
mail split between "ar" and "arz" is still confidently Arabic. A winner with no
ISO 639-1 code, a short text, or a low probability gives "und".
"""

from __future__ import annotations

import re
import threading
from typing import Final

from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

UNDETERMINED: Final = "und"

# Below these the detector's answer on mail text is a coin toss ("Thanks!",
# "ok", a signature), measured on short samples of the product's languages.
MIN_LETTERS: Final = 12
MIN_PROBABILITY: Final = 0.5
# The first KB decides the language as well as the whole mail does, and
# keeps the cost per message flat.
MAX_CHARS: Final = 1024

_VARIANTS: Final = {"ary": "ar", "arz": "ar", "hbo": "he", "uzs": "uz", "gug": "gn"}

_NOISE: Final = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|\S+@\S+"  # e-mail addresses
    r"|\d+(?:[.,:/-]\d+)*",  # numbers, dates, times, order numbers (any script's digits)
    re.IGNORECASE,
)

_identifier: LanguageIdentifier | None = None
_lock = threading.Lock()


def detect_language(text: str) -> str:
    """Return the ISO 639-1 code of ``text``'s language, or "und" when too short or unsure."""
    sample = _NOISE.sub(" ", text[: MAX_CHARS * 2])[:MAX_CHARS]
    if sum(map(str.isalpha, sample)) < MIN_LETTERS:
        return UNDETERMINED
    scores: dict[str, float] = {}
    for label, probability in _get_identifier().rank(sample):
        code = _VARIANTS.get(label, label)
        scores[code] = scores.get(code, 0.0) + probability
    code, probability = max(scores.items(), key=lambda item: item[1])
    if probability < MIN_PROBABILITY or len(code) != 2:
        return UNDETERMINED
    return code


def _get_identifier() -> LanguageIdentifier:
    # Loading takes about a second, so it happens on first use, not on import,
    # and only once however many worker threads ask at the same time.
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier
