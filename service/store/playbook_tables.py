"""Tables of the playbook: senders, what they sent, the drafts made for them, counsel forwards.

They share :class:`service.store.tables.Base`, so one Alembic history covers
them (revision 0002). Changes here need a new revision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.store.tables import Base, utcnow


class Sender(Base):
    """One customer, by normalised address, and where they stand on the ladder.

    ``state`` is ``clear`` → ``warned`` (``warned_type``: abusive, extortion or
    will) → ``terminated``; or ``legal`` (terminated at once, mail routed to
    counsel). An admin reset puts the sender back to ``clear``.
    """

    __tablename__ = "senders"
    __table_args__ = (UniqueConstraint("address", name="uq_senders_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="clear")
    warned_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    will_candidate: Mapped[bool] = mapped_column(Boolean, default=False)
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SenderMessage(Base):
    """A message of a sender and the playbook's plan for it, made once.

    The row is written in the same transaction as the sender's state change,
    so a replayed message reads its plan back instead of deciding again.
    """

    __tablename__ = "sender_messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "message_key", name="uq_sender_messages_key"),
        Index("ix_sender_messages_sender", "sender_id", "received_at"),
        Index("ix_sender_messages_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    mailbox: Mapped[str] = mapped_column(String(64))
    message_key: Mapped[str] = mapped_column(String(512))
    message_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    opens_conversation: Mapped[bool] = mapped_column(Boolean, default=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    scores: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    evidence: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SenderEvent(Base):
    """The sender's history: flagged, warned, terminated, routed, drafts approved, reset..."""

    __tablename__ = "sender_events"
    __table_args__ = (Index("ix_sender_events_sender", "sender_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    kind: Mapped[str] = mapped_column(String(32))
    message_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    draft_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Draft(Base):
    """A reply the playbook drafted for one message, and what a human did with it.

    ``state``: ``error`` (a template or placeholder failed), ``blocked`` (the
    litmus test flagged it), ``ready`` (built, not yet in the Drafts folder;
    stays so under dry_run), ``appended`` (in Drafts, waiting for a human),
    ``sending``, ``sent``, ``send_failed`` (can be approved again),
    ``rejected``, ``dry_run`` (approved while dry_run was on: nothing sent).
    """

    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("mailbox", "source_key", name="uq_drafts_source"),
        Index("ix_drafts_state", "state"),
        Index("ix_drafts_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    mailbox: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(512))
    source_message_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(3), default="ltr")
    state: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    from_address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    from_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(512), nullable=True)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    note: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    litmus: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    approved_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rejected_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class CounselForward(Base):
    """A message forwarded to counsel as an attachment; ``state``: sent, send_failed or dry_run."""

    __tablename__ = "counsel_forwards"
    __table_args__ = (UniqueConstraint("mailbox", "message_key", name="uq_counsel_forwards_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    mailbox: Mapped[str] = mapped_column(String(64))
    message_key: Mapped[str] = mapped_column(String(512))
    address: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


__all__ = ["CounselForward", "Draft", "Sender", "SenderEvent", "SenderMessage"]
