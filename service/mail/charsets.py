"""Turning mail bytes into text when the declared charset cannot be trusted.

Support mail lies about its charset often enough that a declaration is a hint,
not a fact: Arabic typed in windows-1256 goes out labelled iso-8859-1, "utf-8"
parts hold windows-1252, old clients send 8-bit text with no label at all, and
some labels (``iso-8859-8-i``, ``x-mac-arabic``) are unknown to Python. The
order of trust is therefore: the declared charset if it decodes cleanly and
the result does not look like mojibake, then UTF-8 (a strict UTF-8 decode of
non-ASCII bytes is very rarely an accident), then charset-normalizer's guess,
then windows-1252 with replacement characters. Every step away from the
declaration is recorded as a defect code.
"""

from __future__ import annotations

import codecs
import functools
import logging
from typing import Final

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

logger = logging.getLogger(__name__)

# Labels seen in mail that Python's codec registry does not know, or knows as a
# narrower charset than the one mail clients actually use for them (the WHATWG
# encoding standard maps these the same way, which is what senders' software
# does when it writes them).
_ALIASES: Final[dict[str, str]] = {
    "iso-8859-8-i": "iso8859_8",  # logical-order Hebrew: same bytes as iso-8859-8
    "iso-8859-8-e": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "iso-8859-6-e": "iso8859_6",
    "x-mac-arabic": "mac_arabic",
    "x-mac-hebrew": "cp1255",  # no Python codec; windows-1255 shares the letters
    "iso-8859-1": "cp1252",  # 0x80-0x9f are cp1252 punctuation in practice, not C1 controls
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "big5": "big5hkscs",
    "cp-850": "cp850",
    "unicode": "utf-16",
    "unicode-1-1-utf-8": "utf-8",
    "utf8mb4": "utf-8",
}

# Text codecs that no mail charset label should select: they reinterpret
# backslashes or hostnames rather than decode a character set.
_NOT_CHARSETS: Final[frozenset[str]] = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)

# Charsets that encode ASCII text as ASCII bytes. For anything else (UTF-16,
# UTF-7, the 7-bit ISO-2022 family) "the bytes are ASCII" says nothing.
_NOT_ASCII_SAFE: Final[frozenset[str]] = frozenset(
    {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7",
     "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3",
     "iso2022_jp_ext", "iso2022_kr", "hz"}
)

# Single-byte charsets decode every byte string without error, so a wrong label
# (windows-1256 bytes labelled iso-8859-1) only shows as mojibake.
_SINGLE_BYTE_PREFIXES: Final[tuple[str, ...]] = ("cp12", "iso8859", "koi8", "mac-", "mac_", "cp8", "ascii")

# The encodings worth guessing for this product's senders, most common first.
# Restricting the candidates keeps charset-normalizer from picking exotic
# codecs (big5hkscs for a German sentence, mac_cyrillic for cp1251 Russian).
_GUESS_ORDER: Final[tuple[str, ...]] = (
    "utf_8", "cp1252", "cp1256", "cp1255", "cp1251", "koi8_r", "iso8859_6", "iso8859_8",
    "cp1254", "cp1250", "cp1253", "cp1257", "iso8859_15", "iso8859_2", "iso8859_5",
    "gb18030", "big5", "cp932", "euc_jp", "cp949", "iso2022_jp", "utf_16",
)
_GUESS_RANK: Final[dict[str, int]] = {name: i for i, name in enumerate(_GUESS_ORDER)}
_LATIN: Final[frozenset[str]] = frozenset({"cp1252", "cp1250", "cp1254", "cp1257", "iso8859_15", "iso8859_2"})

# mess_ratio of real text is ~0; windows-1256/1255/1251 bytes read as latin
# score above 1. The margin keeps a text with a few odd symbols on its label.
_MOJIBAKE_RATIO: Final = 0.2
_MESS_SAMPLE: Final = 4096


def resolve_charset(label: str | None) -> str | None:
    """Return the Python codec name for a MIME charset label, or None if unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    return _resolve(_ALIASES.get(name, name))


@functools.lru_cache(maxsize=256)
def _resolve(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
        # Python also registers bytes-to-bytes codecs (base64, zlib, rot13)
        # and "undefined"; a sender can name them, and they are not charsets.
        # A text codec decodes bytes to str.
        is_text = isinstance(codecs.decode(b"", codec), str)
    except Exception:  # noqa: BLE001 - each registered codec fails its own way (zlib.error...)
        return None
    return codec if is_text and codec not in _NOT_CHARSETS else None


def decode_bytes(data: bytes, declared: str | None, *, partial: bool = False) -> tuple[str, tuple[str, ...]]:
    """Decode ``data`` labelled with charset ``declared``; return the text and defect codes.

    ``partial`` says the bytes were cut by a size cap, so a multi-byte
    character split at the end is not evidence of a wrong charset. Never raises.
    """
    defects: list[str] = []
    codec = resolve_charset(declared)
    if declared and codec is None:
        defects.append("charset_unknown")
    if codec is not None:
        try:
            text = _strict(data, codec, partial)
        except UnicodeError:
            defects.append("charset_mismatch")
        else:
            if not (_is_single_byte(codec) and not data.isascii() and _looks_mislabelled(text)):
                return text, tuple(defects)
            guessed = _guess(data)
            if guessed is None or resolve_charset(guessed[0]) == codec:
                return text, tuple(defects)
            defects.append("charset_mislabelled")
            return guessed[1], tuple(defects)
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii"), tuple(defects)
    if not declared:
        defects.append("charset_undeclared")
    try:
        return _strict(data, "utf-8", partial), tuple(defects)
    except UnicodeDecodeError:
        pass
    guessed = _guess(data)
    if guessed is not None:
        defects.append("charset_guessed")
        return guessed[1], tuple(defects)
    defects.append("charset_undecodable")
    fallback = codec if codec and codec not in _NOT_ASCII_SAFE else "cp1252"
    return data.decode(fallback, errors="replace"), tuple(defects)


def _strict(data: bytes, codec: str, partial: bool) -> str:
    if partial:
        # The incremental decoder holds back an incomplete trailing sequence
        # instead of failing on it.
        return codecs.getincrementaldecoder(codec)("strict").decode(data, final=False)
    return data.decode(codec)


def _is_single_byte(codec: str) -> bool:
    return codec.startswith(_SINGLE_BYTE_PREFIXES)


def _looks_mislabelled(text: str) -> bool:
    return mess_ratio(text[:_MESS_SAMPLE], maximum_threshold=_MOJIBAKE_RATIO) >= _MOJIBAKE_RATIO


def _guess(data: bytes) -> tuple[str, str] | None:
    """charset-normalizer's best (encoding, text) for ``data`` among the usual mail charsets."""
    try:
        matches = list(from_bytes(data, cp_isolation=list(_GUESS_ORDER)))
    except Exception:  # a detector failure only means "no guess"
        logger.debug("charset detection failed", exc_info=True)
        return None
    if not matches:
        return None
    best = min(matches, key=lambda m: (round(m.chaos, 2), -m.coherence))
    if best.encoding in _LATIN:
        # Between Latin code pages the coherence scores of a short text are
        # noise (cp1250 beats cp1252 on plain French); prefer the code page
        # this product's senders actually use, among equally clean readings.
        latin = [m for m in matches if m.encoding in _LATIN and round(m.chaos, 2) == round(best.chaos, 2)]
        best = min(latin, key=lambda m: _GUESS_RANK.get(m.encoding, len(_GUESS_RANK)))
    try:
        return best.encoding, data.decode(best.encoding, errors="replace")
    except LookupError:
        return None
