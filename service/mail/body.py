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
from dataclasses import dataclass
from email.message import Message
from typing import Final, TypeVar

from inscriptis import get_text  # type: ignore[import-untyped]

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


@dataclass(frozen=True, slots=True)
class _Fragment:
    """One displayable part: plain text, or HTML still to be converted."""

    text: str
    is_html: bool


class _Walk:
    """One body extraction: visits every part at most once, collects defect codes."""

    def __init__(self) -> None:
        self.defects: list[str] = []
        self.parts_seen = 0
        self.first_charset: str | None = None

    def fragments(self, part: Message, depth: int) -> list[_Fragment]:
        """The displayable fragments under ``part``, in display order."""
        fragments = self._fragments(part, depth)
        # Parser defects (bad base64, missing boundaries) are complete only
        # once the payload has been decoded.
        for defect in getattr(part, "defects", ()):
            self.add_defect(defect_code(defect))
        return fragments

    def _fragments(self, part: Message, depth: int) -> list[_Fragment]:
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
            children: object = _safe(lambda: part.get_payload(), None, self.defects)
            if not isinstance(children, list) or not children:
                return []
            if ctype == "multipart/related":
                return self.fragments(children[0], depth + 1)
            found = [self.fragments(child, depth + 1) for child in children]
            if ctype == "multipart/alternative":
                return _best_alternative(found)
            return [fragment for fragments in found for fragment in fragments]
        if ctype in ("text/plain", "text/html"):
            text = self._decode(part, ctype)
            return [_Fragment(text, ctype == "text/html")] if text.strip() else []
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

    def render(self, fragment: _Fragment) -> str:
        if not fragment.is_html:
            return fragment.text
        try:
            return str(get_text(fragment.text))
        except Exception:  # lxml rejects some inputs outright; the rest of the mail still counts
            logger.debug("html conversion failed", exc_info=True)
            self.add_defect("html_unconvertible")
            return ""

    def add_defect(self, code: str) -> None:
        if code not in self.defects:
            self.defects.append(code)


def _best_alternative(alternatives: list[list[_Fragment]]) -> list[_Fragment]:
    """The first alternative with plain text, else the first with anything."""
    # HTML is converted only after this choice, so a mail with a plain-text
    # version never pays for the HTML conversion.
    for fragments in alternatives:
        if any(not f.is_html for f in fragments):
            return fragments
    return next((fragments for fragments in alternatives if fragments), [])


def extract_body(message: Message) -> tuple[str, str | None, tuple[str, ...]]:
    """Return (body text, first declared text charset, defect codes) of a parsed message."""
    walk = _Walk()
    texts = (walk.render(fragment) for fragment in walk.fragments(message, 0))
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
    except Exception:  # see the module docstring: one bad part must not lose the others
        logger.debug("mime part access failed", exc_info=True)
        if "mime_part_unreadable" not in defects:
            defects.append("mime_part_unreadable")
        return default
