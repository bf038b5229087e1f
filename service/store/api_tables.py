"""Tables of the admin API: stored threshold overrides, the audit log, label feedback.

They share ``Base`` with the daemon's tables; their schema is created by the
Alembic revision 0003 (migrations/versions/0003_api.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.store.tables import Base, MessageRecord, utcnow

# The key of a threshold that applies to every language.
ALL_LANGUAGES = ""


class ThresholdOverride(Base):
    """One threshold set through the API; it beats the model's and the settings' value.

    ``language`` is empty for the label's default, else an ISO 639-1 code
    (or "und") whose mail uses this threshold instead.
    """

    __tablename__ = "threshold_overrides"

    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True, default=ALL_LANGUAGES)
    value: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """One change made through the API: who, when, what it was before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_action", "action", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(320), nullable=True)
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)


class Feedback(Base):
    """An admin's correction of a message's labels: training data for the next model.

    One row per message; a second correction replaces the first (the audit log
    keeps both).
    """

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    labels: Mapped[list[str]] = mapped_column(JSON)
    model_labels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    # "api" (an admin) or "imap" (an agent's keyword or folder change, revision 0004).
    source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    # The corrected mail's subject and model text, kept for retraining (corrections.keep_text).
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


# On the daemon's table, for the API: the preview's score index reads the rows
# written since it last looked; the review queue filters by language or state.
Index("ix_messages_updated", MessageRecord.updated_at)
Index("ix_messages_language_received", MessageRecord.language, MessageRecord.received_at)
Index("ix_messages_state_received", MessageRecord.state, MessageRecord.received_at)
