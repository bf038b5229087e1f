"""The "Will" pattern: a sender who opens more than N conversations in D days.

A conversation is a message that is not a reply to a message we know (one
the store has seen, or one of our drafts): its In-Reply-To and References
name nothing known. Replies inside an open thread never count. The window
starts afresh after an admin reset and after a Will warning shot, so a
termination needs a new run of conversations after the warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from service.settings import WillSettings


def message_refs(in_reply_to: str | None, references: Sequence[str]) -> tuple[str, ...]:
    """Every Message-ID a message says it answers."""
    return tuple(dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])]))


def window_start(
    now: datetime, settings: WillSettings, *, reset_at: datetime | None = None, will_warned_at: datetime | None = None
) -> datetime:
    """The earliest time a conversation still counts from."""
    # The conversation that drew the warning belongs to the old run.
    after_warning = will_warned_at + timedelta(microseconds=1) if will_warned_at else None
    starts = [now - timedelta(days=settings.days), reset_at, after_warning]
    return max(t for t in starts if t is not None)


def is_will_candidate(opens_conversation: bool, conversations: int, settings: WillSettings) -> bool:
    """``conversations`` counts this message too; only a new conversation can make a candidate."""
    return opens_conversation and conversations > settings.conversations


__all__ = ["is_will_candidate", "message_refs", "window_start"]
