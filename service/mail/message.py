"""The parsed form of a mail message passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What the pipeline needs to know about one mail, decoded and cleaned.

    ``text`` is what the classifier reads: the subject and the visible new part
    of the body, with quoted replies, signatures and attachments removed, capped
    at the configured size. ``key`` identifies the message across UIDVALIDITY
    changes: the Message-ID, or a hash of the headers when it is missing.
    """

    key: str
    message_id: str | None
    sender: str
    sender_name: str
    subject: str
    date: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    body: str
    text: str
    language: str
    truncated: bool = False
    defects: tuple[str, ...] = field(default_factory=tuple)
