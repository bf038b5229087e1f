"""Decoding header values that may be folded, 8-bit, or RFC 2047 encoded in any charset.

``email.policy.default`` decodes headers itself, but it turns an unknown
encoded-word charset (``=?iso-8859-8-i?B?...?=``, common for Hebrew) and raw
8-bit bytes (common for Arabic and Russian subjects) into U+FFFD. The header
values here are therefore read raw (``Message.raw_items``) and decoded with the
same charset rules as bodies (:mod:`service.mail.charsets`).
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
from datetime import datetime
from typing import Final

from service.mail.charsets import decode_bytes, resolve_charset

# Generous for a subject or a display name; longer values are either attacks
# or a broken header swallowing the body.
MAX_HEADER_CHARS: Final = 4096
_MAX_IDS: Final = 100

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACE_RUN = re.compile(r"\s+")
_MSG_ID = re.compile(r"<([^<>\s]{1,900})>")
_BARE_ADDRESS = re.compile(r"[^\s<>\"'(),;:@]+@[^\s<>\"'(),;:@]+\.[^\s<>\"'(),;:@]+")


def unfold(raw: str) -> str:
    """``raw`` with folding and line breaks removed (RFC 5322 section 2.2.3)."""
    return _FOLD.sub("", raw).replace("\r", " ").replace("\n", " ")


def decode_value(raw: str, charset_hint: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Decode a raw header value to one clean line of text; return it and defect codes.

    ``charset_hint`` (the body's declared charset) is tried for raw 8-bit bytes
    that are not UTF-8, before guessing.
    """
    defects: list[str] = []
    value = unfold(raw)
    if "\x00" in value:
        defects.append("null_bytes")
    if _has_surrogates(value):
        # BytesParser keeps 8-bit header bytes as surrogate escapes.
        defects.append("header_8bit")
        value = _decode_8bit(value.encode("ascii", "surrogateescape"), charset_hint)
    if "=?" in value:
        value, word_defects = _decode_encoded_words(value)
        defects.extend(word_defects)
    value = _SPACE_RUN.sub(" ", _CONTROL.sub("", value)).strip()
    if len(value) > MAX_HEADER_CHARS:
        defects.append("header_too_long")
        value = value[:MAX_HEADER_CHARS]
    return value, tuple(defects)


def parse_from(raw: str, charset_hint: str | None = None) -> tuple[str, str, tuple[str, ...]]:
    """Return (bare lower-cased address, decoded display name, defects) of a From value."""
    defects: list[str] = []
    value = unfold(raw)
    if _has_surrogates(value):
        defects.append("header_8bit")
        value = _decode_8bit(value.encode("ascii", "surrogateescape"), charset_hint)
    value = _CONTROL.sub("", value)
    name, address = "", ""
    # Encoded words are parsed as atoms here and decoded afterwards, so that a
    # decoded name holding "<", "," or "@" cannot change which address is found.
    for candidate_name, candidate_address in email.utils.getaddresses([value]):
        if "@" in candidate_address:
            name, address = candidate_name, candidate_address
            break
    if not address:
        match = _BARE_ADDRESS.search(value)
        if match is None:
            return "", "", (*defects, "from_unparsable")
        defects.append("from_malformed")
        address = match.group(0)
        name = value[: match.start()].strip(" <\"'")
    display, name_defects = decode_value(name, charset_hint)
    return address.strip().lower(), display.strip("\"' "), (*defects, *name_defects)


def message_ids(raw: str | None) -> tuple[str, ...]:
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References value, in order, deduplicated."""
    if not raw:
        return ()
    value = unfold(raw)
    if _has_surrogates(value):
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    found = dict.fromkeys(f"<{m}>" for m in _MSG_ID.findall(_CONTROL.sub("", value)))
    return tuple(found)[:_MAX_IDS]


def is_valid_message_id(message_id: str) -> bool:
    """Whether ``message_id`` is specific enough to identify a message (``<left@right>``)."""
    inner = message_id[1:-1]
    left, _, right = inner.partition("@")
    return bool(left and right)


def iso_date(raw: str) -> str | None:
    """The Date value as ISO 8601, or None when it does not parse."""
    try:
        parsed: datetime = email.utils.parsedate_to_datetime(unfold(raw).strip())
    except Exception:  # noqa: BLE001 - the stdlib date parser raises several types on junk
        return None
    return parsed.isoformat()


def _has_surrogates(value: str) -> bool:
    return not value.isascii() and any("\udc80" <= ch <= "\udcff" for ch in value)


def _decode_8bit(data: bytes, charset_hint: str | None) -> str:
    # RFC 6532 allows UTF-8 headers, and non-ASCII bytes that decode as UTF-8
    # rarely do so by accident. Failing that, the body's declared charset is a
    # better bet than guessing from a few dozen bytes.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text, _ = decode_bytes(data, charset_hint if resolve_charset(charset_hint) else None)
    return text


def _decode_encoded_words(value: str) -> tuple[str, tuple[str, ...]]:
    """Decode RFC 2047 encoded words; return the text and defect codes."""
    try:
        chunks = email.header.decode_header(value)
    except (email.errors.HeaderParseError, ValueError, AssertionError):
        # One undecodable word (bad base64) fails the whole call; the raw
        # value is still more useful than nothing.
        return value, ("header_bad_encoded_word",)
    parts: list[str] = []
    defects: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
        elif charset is None:
            # decode_header hands back the unencoded runs it split off as
            # raw-unicode-escape bytes.
            parts.append(chunk.decode("raw-unicode-escape", errors="replace"))
        else:
            text, word_defects = decode_bytes(chunk, charset)
            defects.extend(word_defects)
            parts.append(text)
    return "".join(parts), tuple(defects)
