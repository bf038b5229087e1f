"""Raw RFC 5322 bytes to :class:`ParsedMessage`, and the text the classifier reads.

``parse_message`` never raises on a broken mail: every problem it works
around is recorded in ``ParsedMessage.defects`` as a short code (never mail
text, so defects can be logged and stored). Only bytes that are not a mail at
all (empty, or without a single header field) raise :class:`MessageError`.

``model_text`` is also imported by the training code, so that the model is
trained on exactly the text it sees in production; change it only together
with a retraining.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Callable
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from typing import Final, TypeVar

from service.errors import MessageError
from service.mail.body import defect_code, extract_body
from service.mail.headers import (
    decode_value,
    is_valid_message_id,
    iso_date,
    message_ids,
    parse_from,
    unfold,
)
from service.mail.language import detect_language
from service.mail.message import ParsedMessage
from service.mail.quotes import strip_quotes

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_CHARS: Final = 20000
# Headers whose repetition is a defect (RFC 5322 section 3.6 allows one).
_SINGLE_HEADERS: Final = ("from", "subject", "date", "message-id", "to", "in-reply-to")
_KEY_HEADERS: Final = ("from", "to", "date", "subject")
_KEY_BODY_BYTES: Final = 1024
# Far above any real mail (each level of nesting is one "multipart/").
_MAX_MULTIPARTS: Final = 200
_MULTIPART: Final = re.compile(rb"multipart/", re.IGNORECASE)
_BODY_SEPARATOR: Final = re.compile(rb"\r?\n\r?\n")
_MAX_DEFECTS: Final = 32


def model_text(subject: str, body: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The subject and the new part of ``body`` (no quotes or signatures), joined by a newline and capped."""
    return _model_text(subject, body, max_chars)[1]


def parse_message(raw: bytes, *, max_chars: int = DEFAULT_MAX_CHARS) -> ParsedMessage:
    """Parse one mail as fetched from the server.

    Raises :class:`MessageError` only when ``raw`` is not a mail at all.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise MessageError(f"expected the raw bytes of a mail, got {type(raw).__name__}")
    defects: list[str] = []
    data = _normalise_raw(bytes(raw), defects)
    if not data.strip():
        raise MessageError("empty message")

    message, complete = _parse_bytes(data, defects)
    headers = _raw_headers(message, defects)
    if not headers:
        raise MessageError("no header fields: not a mail")

    body, charset_hint = "", None
    if complete:
        no_body: tuple[str, str | None, tuple[str, ...]] = ("", None, ())
        body, charset_hint, body_defects = _guarded(lambda: extract_body(message), no_body, defects, "body_unreadable")
        defects.extend(body_defects)
    defects.extend(defect_code(d) for d in message.defects)

    hint = charset_hint
    subject = _guarded(lambda: _header_text(headers, "subject", hint, defects), "", defects, "subject_unreadable")
    sender, sender_name = _guarded(lambda: _sender(headers, hint, defects), ("", ""), defects, "from_unparsable")
    date = _guarded(lambda: _date(headers, defects), None, defects, "date_invalid")
    message_id = _guarded(lambda: _message_id(headers, defects), None, defects, "message_id_invalid")
    in_reply_to = next(iter(message_ids(_first(headers, "in-reply-to"))), None)
    references = message_ids(" ".join(headers.get("references", [])))

    cleaned, text, truncated = _model_text(subject, body, max_chars)
    # A mail whose body is empty or all quote still has a language: its subject's.
    language = detect_language(cleaned or subject)
    key = message_id if message_id and is_valid_message_id(message_id) else _fallback_key(headers, data)

    return ParsedMessage(
        key=key,
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        subject=subject,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
        body=body,
        text=text,
        language=language,
        truncated=truncated,
        defects=tuple(dict.fromkeys(defects))[:_MAX_DEFECTS],
    )


def _model_text(subject: str, body: str, max_chars: int) -> tuple[str, str, bool]:
    """Return (cleaned body, model text, whether the cap cut something)."""
    # Quotes are stripped from a window of the body, not all of it: the output
    # is capped at max_chars anyway, and a 5 MB body must not cost a full scan.
    # The window is wide enough that only mails with far more quoted than new
    # text lose anything to it.
    window = max_chars * 4
    cleaned = strip_quotes(body[:window])
    full = "\n".join(part for part in (subject.strip(), cleaned) if part)
    return cleaned, full[:max_chars], len(full) > max_chars or len(body) > window


def _guarded(call: Callable[[], T], default: T, defects: list[str], code: str) -> T:
    """``call()``, or ``default`` with defect ``code`` if it raises.

    The decoders below are written not to raise, but they lean on stdlib
    parsers that have raised on hostile input in past releases, and one bad
    header must not cost the whole message.
    """
    try:
        return call()
    except Exception:  # translated into a defect code, see the docstring
        logger.debug("degraded: %s", code, exc_info=True)
        defects.append(code)
        return default


def _normalise_raw(data: bytes, defects: list[str]) -> bytes:
    # Windows tools save .eml files as UTF-16, or as UTF-8 with a byte order
    # mark that would otherwise become part of the first header's name.
    has_bom = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    if has_bom or _looks_utf16le(data):
        try:
            data = data.decode("utf-16" if has_bom else "utf-16-le").encode("utf-8")
            defects.append("raw_utf16")
        except UnicodeDecodeError:
            defects.append("raw_utf16_undecodable")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    # Leading blank lines would make the parser read every header as body.
    return data.lstrip(b"\r\n\t \x00")


def _looks_utf16le(data: bytes) -> bool:
    head = data[:64]
    return len(head) >= 16 and head[1::2].count(0) == len(head[1::2]) and head[0::2].count(0) == 0


class _MemoHeaderRegistry(HeaderRegistry):
    """The default header registry, remembering the headers it parsed for one message.

    With ``policy.default`` every ``get_content_type()`` runs the full RFC 2045
    header parser again, and the feed parser alone asks about sixteen times
    for a three-part mail; that was 1.7 ms of a 2 ms budget. Header objects
    are immutable, so handing out the same one again is safe.
    """

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name, value)
        header = self._memo.get(key)
        if header is None:
            header = self._memo[key] = super().__call__(name, value)
        return header


def _parse_bytes(data: bytes, defects: list[str]) -> tuple[Message, bool]:
    """The parsed message, and False when only its headers could be parsed."""
    # A fresh registry per message, so that no header outlives its message.
    parser = BytesParser(policy=policy.default.clone(header_factory=_MemoHeaderRegistry()))
    if _too_many_multiparts(data):
        # The stdlib parser checks every line against every open boundary, so
        # thousands of nested multiparts cost seconds before it hits the
        # recursion limit. No client nests like that; keep the headers only.
        defects.append("mime_too_deep")
        return parser.parsebytes(data, headersonly=True), False
    try:
        return parser.parsebytes(data), True
    except RecursionError:
        # The stdlib parser recurses per nesting level and gives up near a
        # thousand levels; the headers are still worth having.
        defects.append("mime_too_deep")
    except Exception:  # a parser bug on hostile input must not lose the message
        logger.debug("mime parse failed, reading headers only", exc_info=True)
    defects.append("mime_unparsable")
    try:
        return parser.parsebytes(data, headersonly=True), False
    except Exception as exc:  # not even a header block: not a mail
        raise MessageError("the header block cannot be parsed") from exc


def _too_many_multiparts(data: bytes) -> bool:
    return sum(1 for _ in itertools.islice(_MULTIPART.finditer(data), _MAX_MULTIPARTS + 1)) > _MAX_MULTIPARTS


def _raw_headers(message: Message, defects: list[str]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(str(name).strip().lower(), []).append(str(value))
    for name in _SINGLE_HEADERS:
        if len(headers.get(name, ())) > 1:
            defects.append(f"duplicate_{name.replace('-', '_')}")
    return headers


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _header_text(headers: dict[str, list[str]], name: str, hint: str | None, defects: list[str]) -> str:
    raw = _first(headers, name)
    if raw is None:
        return ""
    value, value_defects = decode_value(raw, hint)
    defects.extend(value_defects)
    return value


def _sender(headers: dict[str, list[str]], hint: str | None, defects: list[str]) -> tuple[str, str]:
    raw = _first(headers, "from")
    if raw is None:
        defects.append("no_from")
        return "", ""
    address, name, from_defects = parse_from(raw, hint)
    defects.extend(from_defects)
    return address, name


def _date(headers: dict[str, list[str]], defects: list[str]) -> str | None:
    raw = _first(headers, "date")
    if raw is None:
        defects.append("no_date")
        return None
    date = iso_date(raw)
    if date is None:
        defects.append("date_invalid")
    return date


def _message_id(headers: dict[str, list[str]], defects: list[str]) -> str | None:
    raw = _first(headers, "message-id")
    if raw is None or not raw.strip():
        defects.append("no_message_id")
        return None
    ids = message_ids(raw)
    if not ids or not is_valid_message_id(ids[0]):
        defects.append("message_id_invalid")
    return ids[0] if ids else decode_value(raw)[0][:998] or None


def _fallback_key(headers: dict[str, list[str]], data: bytes) -> str:
    """A key for a mail without a usable Message-ID, stable across fetches of the same bytes."""
    # Raw values, not decoded ones, so that the key of a stored mail does not
    # change when the decoding rules of this package improve. Whitespace is
    # normalised because servers may refold long headers.
    fields = [" ".join(unfold(_first(headers, name) or "").split()) for name in _KEY_HEADERS]
    separator = _BODY_SEPARATOR.search(data)
    body = data[separator.end() : separator.end() + _KEY_BODY_BYTES] if separator else b""
    digest = hashlib.sha256(json.dumps(fields, ensure_ascii=True).encode("ascii"))
    digest.update(b"\n\n" + body)
    return "sha256:" + digest.hexdigest()
