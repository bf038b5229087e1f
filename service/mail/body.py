"""Choosing and decoding the part of a MIME tree that a person would read.

Rules, in the order a mail client applies them: attachments (disposition
``attachment``) and non-text parts are skipped; in ``multipart/alternative``
the text/plain version wins and text/html is used only when there is no
non-empty plain text; in ``multipart/related`` only the root part is shown;
``message/*`` parts (forwarded mails, bounce originals, delivery reports) are
older content and are skipped; every other multipart shows all of its inline
text parts in order. Every access to a part goes through :func:`_safe`,
because the header parser of ``email.policy.default`` has raised on malformed
parameters in several Python releases, and one bad part must not lose the rest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from email.message import Message
from typing import Final, TypeVar

from inscriptis import get_text

from service.mail.charsets import decode_bytes

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Real clients nest five or six levels; the corpus checks that 50 still work.
MAX_DEPTH: Final = 100
MAX_PARTS: Final = 1000
# Prose a person typed never comes near this; beyond it is pasted logs or an
# attack, and charset guessing and HTML conversion cost grows with the size.
MAX_PART_BYTES: Final = 1_000_000

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
_UNSAFE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class _Walk:
    """State of one body extraction: defect codes and the part budget."""

    def __init__(self) -> None:
        self.defects: list[str] = []
        self.parts_seen = 0
        self.first_charset: str | None = None

    def texts(self, part: Message, depth: int, allow_html: bool) -> list[str]:
        """The readable texts under ``part``, in display order."""
        texts = self._texts(part, depth, allow_html)
        # Parser defects (bad base64, missing boundaries) are complete only
        # once the payload has been decoded.
        for defect in getattr(part, "defects", ()):
            self.add_defect(defect_code(defect))
        return texts

    def _texts(self, part: Message, depth: int, allow_html: bool) -> list[str]:
        self.parts_seen += 1
        if self.parts_seen > MAX_PARTS:
            self.add_defect("mime_too_many_parts")
            return []
        if depth > MAX_DEPTH:
            self.add_defect("mime_too_deep")
            return []
        if _safe(part.get_content_disposition, None, self.defects) == "attachment":
            return []
        ctype = _safe(part.get_content_type, "text/plain", self.defects)
        if ctype.startswith("message/"):
            return []
        multipart = part.is_multipart()
        if ctype.startswith("multipart/") and not multipart:
            # Without a usable boundary the parser keeps the body as one
            # string; it is the sender's text more often than not.
            ctype = "text/plain"
        if multipart:
            children = _safe(part.get_payload, [], self.defects)
            if not isinstance(children, list):
                return []
            if ctype == "multipart/alternative":
                return self._alternative(children, depth)
            if ctype == "multipart/related" and children:
                return self.texts(children[0], depth + 1, allow_html)
            out: list[str] = []
            for child in children:
                out.extend(self.texts(child, depth + 1, allow_html))
            return out
        if ctype == "text/plain":
            text = self._decode(part, ctype)
            return [text] if text else []
        if ctype == "text/html" and allow_html:
            text = self._html(part, ctype)
            return [text] if text else []
        return []

    def _alternative(self, children: list[Message], depth: int) -> list[str]:
        budget = self.parts_seen
        for allow_html in (False, True):
            for child in children:
                texts = self.texts(child, depth + 1, allow_html)
                if any(t.strip() for t in texts):
                    return texts
            if not allow_html:
                # The plain-only pass visited these parts already; do not
                # charge them twice against the part budget.
                self.parts_seen = budget
        return []

    def _decode(self, part: Message, ctype: str) -> str:
        payload = _safe(lambda: part.get_payload(decode=True), None, self.defects)
        if not isinstance(payload, bytes):
            return ""
        charset = _safe(part.get_content_charset, None, self.defects)
        if charset is None and ctype == "text/html":
            match = _META_CHARSET.search(payload[:4096])
            charset = match.group(1).decode("ascii") if match else None
        if self.first_charset is None and charset:
            self.first_charset = charset
        partial = len(payload) > MAX_PART_BYTES
        if partial:
            self.add_defect("body_truncated")
            payload = payload[:MAX_PART_BYTES]
        text, defects = decode_bytes(payload, charset, partial=partial)
        for code in defects:
            self.add_defect(code)
        return clean_text(text, self.defects)

    def _html(self, part: Message, ctype: str) -> str:
        html = self._decode(part, ctype)
        if not html.strip():
            return ""
        try:
            return get_text(html)
        except Exception:  # noqa: BLE001 - lxml rejects some inputs; the mail must still parse
            logger.debug("html conversion failed", exc_info=True)
            self.add_defect("html_unconvertible")
            return ""

    def add_defect(self, code: str) -> None:
        if code not in self.defects:
            self.defects.append(code)


def extract_body(message: Message) -> tuple[str, str | None, tuple[str, ...]]:
    """Return (body text, first declared text charset, defect codes) of a parsed message."""
    walk = _Walk()
    texts = walk.texts(message, 0, allow_html=True)
    body = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    if not body:
        walk.add_defect("no_text_body")
    return body, walk.first_charset, tuple(walk.defects)


def clean_text(text: str, defects: list[str] | None = None) -> str:
    """``text`` without NUL and other control characters that break lxml, logs and tokenizers."""
    if "\x00" in text and defects is not None and "null_bytes" not in defects:
        defects.append("null_bytes")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x0c", "\n")
    return _UNSAFE_CONTROL.sub("", text)


def defect_code(defect: object) -> str:
    """A short code for a stdlib ``email.errors`` defect: its class name in snake case, no text."""
    name = type(defect).__name__.removesuffix("Defect")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "defect"


def _safe(call: Callable[[], T], default: T, defects: list[str]) -> T:
    try:
        return call()
    except Exception:  # noqa: BLE001 - see the module docstring
        logger.debug("mime part access failed", exc_info=True)
        if "mime_part_unreadable" not in defects:
            defects.append("mime_part_unreadable")
        return default
