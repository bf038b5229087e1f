"""Tables of the correction sync (service/corrections.py); created by Alembic revision 0004."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.store.tables import Base, utcnow


class FolderSync(Base):
    """How far the correction sync has read a folder's changes (RFC 7162 HIGHESTMODSEQ)."""

    __tablename__ = "folder_sync"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer)
    highest_modseq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class KeywordSighting(Base):
    """The label keywords last seen on one copy of a message, to tell an agent's change from the state.

    ``record_id`` is the message's decided record, or None for a message
    WarningShot never handled (so its headers are not fetched again).
    """

    __tablename__ = "keyword_sightings"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    keywords: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
