"""Building the mail itself: the reply a human approves, and the forward to counsel.

Both are RFC 5322 messages made with the stdlib ``email`` package
(``EmailMessage``, ``policy.SMTP``: CRLF line ends, headers folded and
RFC 2047-encoded where needed).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Final

MAIL_POLICY: Final = policy.SMTP
# Reply prefixes of mail clients in the product's languages (Outlook
# translates them); one "Re:" replaces them all.
_REPLY_PREFIX: Final = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|antwort|rif|res|ynt|odp|رد|תגובה|השב)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
# References are capped; a thread of a thousand messages must not make a 64 KB header.
_MAX_REFERENCES: Final = 20


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything that makes up a reply; stored with the draft so it can be rebuilt on approval."""

    from_address: str
    from_name: str
    to_address: str
    to_name: str
    subject: str
    language: str
    direction: str
    text: str
    message_id: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)


def reply_subject(original: str) -> str:
    """``Re: `` plus the original subject without any reply or forward prefixes."""
    subject = " ".join(original.split())
    while True:
        stripped = _REPLY_PREFIX.sub("", subject, count=1)
        if stripped == subject:
            break
        subject = stripped
    return f"Re: {subject}" if subject else "Re:"


def reply_references(message_id: str | None, in_reply_to: str | None, references: Sequence[str]) -> tuple[str, ...]:
    """RFC 5322 3.6.4: the parent's References (or In-Reply-To), then the parent's Message-ID."""
    chain = list(references) or ([in_reply_to] if in_reply_to else [])
    if message_id:
        chain.append(message_id)
    chain = list(dict.fromkeys(chain))
    if len(chain) > _MAX_REFERENCES:
        # Keep the thread's root and the most recent ones (RFC 5322 allows trimming).
        chain = chain[:1] + chain[-(_MAX_REFERENCES - 1):]
    return tuple(chain)


def new_message_id(from_address: str) -> str:
    domain = from_address.rpartition("@")[2] or "warningshot.invalid"
    return make_msgid("ws", domain=domain)


def _address(address: str, name: str) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def _text_cte(text: str) -> str:
    # 7bit where possible; otherwise quoted-printable keeps Latin text readable
    # and base64 keeps Arabic or Hebrew short. Never 8bit: the SMTP relay may
    # lack 8BITMIME.
    if text.isascii():
        return "7bit"
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return "base64" if non_ascii * 3 > len(text) else "quoted-printable"


def html_body(text: str, language: str, direction: str) -> str:
    """The text as minimal HTML: paragraphs, ``> `` lines as a blockquote, dir and lang set."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = paragraph.split("\n")
        if all(line.startswith(">") for line in lines):
            quoted = "<br>\n".join(html.escape(line[1:].strip()) for line in lines)
            blocks.append(f'<blockquote dir="auto">{quoted}</blockquote>')
        else:
            blocks.append(f'<p dir="{direction}">' + "<br>\n".join(html.escape(line) for line in lines) + "</p>")
    align = "right" if direction == "rtl" else "left"
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}" dir="{direction}">\n'
        f'<head><meta charset="utf-8"></head>\n'
        f'<body dir="{direction}" style="direction: {direction}; text-align: {align};">\n'
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def build_reply(reply: Reply, *, date: datetime | None = None) -> EmailMessage:
    """The reply as a message: threaded, language-tagged, RTL marked with an HTML alternative."""
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = _address(reply.from_address, reply.from_name)
    msg["To"] = _address(reply.to_address, reply.to_name)
    msg["Subject"] = reply.subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = reply.message_id
    if reply.in_reply_to:
        msg["In-Reply-To"] = reply.in_reply_to
    if reply.references:
        msg["References"] = " ".join(reply.references)
    msg["MIME-Version"] = "1.0"
    msg.set_content(reply.text, subtype="plain", charset="utf-8", cte=_text_cte(reply.text))
    if reply.direction == "rtl":
        # Plain text has no direction of its own; clients that show the HTML
        # alternative lay the reply out right-to-left.
        page = html_body(reply.text, reply.language, reply.direction)
        msg.add_alternative(page, subtype="html", charset="utf-8", cte=_text_cte(page))
        for part in msg.iter_parts():
            del part["MIME-Version"]
    # After the body: set_content clears every Content-* header.
    msg["Content-Language"] = reply.language
    return msg


def build_forward(
    raw: bytes, *, from_address: str, to_address: str, subject: str, note: str, message_id: str,
    date: datetime | None = None,
) -> bytes:
    """A forward of ``raw`` to counsel: a short note and the original, byte for byte, as message/rfc822."""
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = _address(from_address, "")
    msg["To"] = _address(to_address, "")
    msg["Subject"] = f"Fwd: {' '.join(subject.split())}" if subject else "Fwd: (no subject)"
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id
    msg["MIME-Version"] = "1.0"
    msg.set_content(note, subtype="plain", charset="utf-8", cte=_text_cte(note))
    msg.make_mixed()
    part = EmailMessage(policy=MAIL_POLICY)
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = 'attachment; filename="original.eml"'
    # RFC 2046 5.2.1: message/rfc822 may only be 7bit, 8bit or binary.
    part["Content-Transfer-Encoding"] = "7bit" if raw.isascii() else "8bit"
    # The generator would re-encode (and refuse 8-bit) mail it re-serialises;
    # counsel must get the exact bytes the customer sent, so they replace a
    # marker after serialising.
    marker = f"WS-ORIGINAL-{uuid.uuid4().hex}"
    part.set_payload(marker + "\r\n")
    msg.attach(part)
    body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    out = as_bytes(msg)
    head, found, tail = out.partition(marker.encode() + b"\r\n")
    if not found:  # pragma: no cover - the generator writes a str payload as is
        raise AssertionError("forward marker lost")
    return head + body + tail


def as_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=MAIL_POLICY)


__all__ = [
    "MAIL_POLICY", "Reply", "as_bytes", "build_forward", "build_reply", "html_body", "new_message_id",
    "reply_references", "reply_subject",
]
