"""The API's queries against the store; each function is one short transaction.

Rows leave this module as plain values (dataclasses, dicts), never as ORM
objects bound to a session. Two exceptions are the API's own control flow and
become HTTP statuses in the routes: :class:`NotFound` (404) and
:class:`VersionConflict` (409).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, or_, select, text
from sqlalchemy.orm import Session

from classifiers.interface import Thresholds
from service.store import Store
from service.store.api_tables import ALL_LANGUAGES, AuditEntry, Feedback, ThresholdOverride
from service.store.db import DONE_STATES
from service.store.playbook_tables import Draft
from service.store.tables import Checkpoint, MessageRecord

THRESHOLDS_ACTION = "thresholds.update"
UNDETERMINED = "und"


class NotFound(LookupError):
    """The id or address names nothing in the store."""


class VersionConflict(ValueError):
    """The thresholds changed since the version the client last read."""


def as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the store holds is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ping(store: Store) -> None:
    with store.session() as s:
        s.execute(text("SELECT 1"))


# -- thresholds ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredThresholds:
    thresholds: Thresholds
    version: int
    updated_at: datetime | None
    updated_by: str | None


def _read_overrides(s: Session) -> StoredThresholds:
    default: dict[str, float] = {}
    per_language: dict[str, dict[str, float]] = {}
    for row in s.scalars(select(ThresholdOverride)):
        if row.language == ALL_LANGUAGES:
            default[row.label] = row.value
        else:
            per_language.setdefault(row.language, {})[row.label] = row.value
    last = s.execute(
        select(AuditEntry.id, AuditEntry.at, AuditEntry.actor)
        .where(AuditEntry.action == THRESHOLDS_ACTION)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).first()
    return StoredThresholds(
        Thresholds(default, per_language),
        version=last.id if last else 0,
        updated_at=as_utc(last.at) if last else None,
        updated_by=last.actor if last else None,
    )


def stored_thresholds(store: Store) -> StoredThresholds:
    with store.session() as s:
        return _read_overrides(s)


def thresholds_document(thresholds: Thresholds) -> dict[str, Any]:
    return {
        "default": dict(sorted(thresholds.default.items())),
        "per_language": {lang: dict(sorted(v.items())) for lang, v in sorted(thresholds.per_language.items())},
    }


def replace_thresholds(
    store: Store, new: Thresholds, *, actor: str, expected_version: int | None = None
) -> StoredThresholds:
    """Make ``new`` the stored overrides (all of them) and audit the change."""
    with store.session() as s:
        before = _read_overrides(s)
        if expected_version is not None and expected_version != before.version:
            raise VersionConflict(
                f"thresholds are at version {before.version}, not {expected_version}; read them again"
            )
        old_doc, new_doc = thresholds_document(before.thresholds), thresholds_document(new)
        if old_doc == new_doc:
            return before
        s.execute(delete(ThresholdOverride))
        now = datetime.now(UTC)
        rows = [(label, ALL_LANGUAGES, value) for label, value in new.default.items()]
        rows += [(label, lang, value) for lang, values in new.per_language.items() for label, value in values.items()]
        s.add_all(
            ThresholdOverride(label=label, language=lang, value=value, updated_by=actor, updated_at=now)
            for label, lang, value in rows
        )
        s.add(AuditEntry(at=now, actor=actor, action=THRESHOLDS_ACTION, old=old_doc, new=new_doc))
        s.flush()
        return _read_overrides(s)


# -- audit -------------------------------------------------------------------


def audit(s: Session, *, actor: str, action: str, target: str | None, old: Any, new: Any) -> None:
    """Add an audit entry inside the caller's transaction."""
    s.add(AuditEntry(at=datetime.now(UTC), actor=actor, action=action, target=target, old=old, new=new))


def audit_entries(
    store: Store, *, action: str | None, since: datetime | None, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    with store.session() as s:
        return [
            {"id": e.id, "at": as_utc(e.at), "actor": e.actor, "action": e.action,
             "target": e.target, "old": e.old, "new": e.new}
            for e in s.scalars(query)
        ]


# -- the review queue ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFilter:
    label: str | None = None  # a label, or "none" for messages that got no label
    language: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    flagged: bool | None = None
    sender: str | None = None


def encode_cursor(received_at: datetime, record_id: int) -> str:
    raw = f"{as_utc(received_at).isoformat()}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raise ValueError on anything this module did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, record_id = raw.partition("|")
        return as_utc(datetime.fromisoformat(stamp)), int(record_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise ValueError("not a cursor returned by this API") from exc


def _labels_text() -> Any:
    # JSON lists of fixed label names: a quoted-name match is exact, and it
    # works the same on SQLite and PostgreSQL.
    return cast(MessageRecord.labels, String)


_MESSAGE_COLUMNS = (
    MessageRecord.id, MessageRecord.mailbox, MessageRecord.folder, MessageRecord.uid, MessageRecord.message_id,
    MessageRecord.sender, MessageRecord.subject, MessageRecord.language, MessageRecord.scores, MessageRecord.labels,
    MessageRecord.evidence, MessageRecord.action, MessageRecord.state.label("status"), MessageRecord.attempts,
    MessageRecord.error, MessageRecord.received_at, MessageRecord.updated_at,
    Feedback.labels.label("feedback_labels"),
)


def _message_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["received_at"] = as_utc(out["received_at"])
    out["updated_at"] = as_utc(out["updated_at"])
    return out


def queue(store: Store, f: QueueFilter, *, limit: int, cursor: tuple[datetime, int] | None) -> list[dict[str, Any]]:
    """A page of messages, newest first, keyed on (received_at, id) so every page uses the index."""
    # Columns rather than ORM objects: a page is read, never changed, and this is the hot path.
    query = select(*_MESSAGE_COLUMNS).outerjoin(Feedback, Feedback.message_id == MessageRecord.id)
    if f.label == "none":
        query = query.where(_labels_text() == "[]")
    elif f.label:
        query = query.where(_labels_text().like(f'%"{f.label}"%'))
    if f.flagged is True:
        query = query.where(_labels_text().like('%"%'))
    elif f.flagged is False:
        query = query.where(or_(MessageRecord.labels.is_(None), _labels_text().not_like('%"%')))
    if f.language:
        query = query.where(MessageRecord.language == f.language)
    if f.status:
        query = query.where(MessageRecord.state == f.status)
    if f.sender:
        query = query.where(func.lower(MessageRecord.sender) == f.sender.lower())
    if f.since is not None:
        query = query.where(MessageRecord.received_at >= f.since)
    if f.until is not None:
        query = query.where(MessageRecord.received_at < f.until)
    if cursor is not None:
        stamp, record_id = cursor
        query = query.where(
            MessageRecord.received_at <= stamp,
            or_(MessageRecord.received_at < stamp,
                and_(MessageRecord.received_at == stamp, MessageRecord.id < record_id)),
        )
    query = query.order_by(MessageRecord.received_at.desc(), MessageRecord.id.desc()).limit(limit)
    with store.session() as s:
        return [_message_dict(row) for row in s.execute(query)]


def message(store: Store, record_id: int) -> dict[str, Any]:
    query = (
        select(*_MESSAGE_COLUMNS, MessageRecord.body)
        .outerjoin(Feedback, Feedback.message_id == MessageRecord.id)
        .where(MessageRecord.id == record_id)
    )
    with store.session() as s:
        row = s.execute(query).first()
        if row is None:
            raise NotFound(f"no message {record_id}")
        return _message_dict(row)


# -- preview -------------------------------------------------------------------


_SCORE_COLUMNS = (
    MessageRecord.id, MessageRecord.received_at, MessageRecord.updated_at, MessageRecord.language, MessageRecord.scores,
)


def recent_scores(store: Store, *, received_since: datetime) -> list[tuple[Any, ...]]:
    """(id, received_at, updated_at, language, scores) of every message received since then."""
    query = select(*_SCORE_COLUMNS).where(MessageRecord.received_at >= received_since)
    with store.session() as s:
        return [tuple(row) for row in s.execute(query)]


def scores_updated_since(store: Store, updated_since: datetime) -> list[tuple[Any, ...]]:
    """The same for rows written since then (ix_messages_updated keeps this to the new rows)."""
    query = select(*_SCORE_COLUMNS).where(MessageRecord.updated_at >= updated_since)
    with store.session() as s:
        return [tuple(row) for row in s.execute(query)]


def summaries(store: Store, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    query = select(
        MessageRecord.id, MessageRecord.sender, MessageRecord.subject, MessageRecord.received_at
    ).where(MessageRecord.id.in_(list(ids)))
    with store.session() as s:
        return {
            row.id: {"sender": row.sender, "subject": row.subject, "received_at": as_utc(row.received_at)}
            for row in s.execute(query)
        }


# -- feedback ----------------------------------------------------------------


def save_feedback(
    store: Store, record_id: int, labels: Sequence[str], *, note: str | None, actor: str, source: str = "api",
    subject: str | None = None, text: str | None = None,
) -> dict[str, Any]:
    """Store a correction of a message's labels (the API's and the mail client's alike).

    ``subject`` and ``text`` keep the mail for retraining; without them the
    stored body is used when ``store.store_bodies`` kept one.
    """
    labels = sorted(set(labels))
    with store.session() as s:
        rec = s.get(MessageRecord, record_id)
        if rec is None:
            raise NotFound(f"no message {record_id}")
        row = s.scalars(select(Feedback).where(Feedback.message_id == record_id)).first()
        old = None if row is None else {"labels": row.labels, "note": row.note, "source": row.source}
        now = datetime.now(UTC)
        if row is None:
            row = Feedback(message_id=record_id, created_at=now, model_labels=rec.labels)
            s.add(row)
        row.labels, row.note, row.actor, row.source, row.updated_at = labels, note, actor, source, now
        if text is not None or rec.body is not None:
            row.subject = subject if text is not None else rec.subject
            row.text = text if text is not None else rec.body
        audit(s, actor=actor, action="feedback.labels", target=f"message:{record_id}",
              old=old, new={"labels": labels, "note": note, "source": source})
        s.flush()
        return _feedback_dict(row)


def _feedback_dict(row: Feedback) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "labels": row.labels,
        "model_labels": row.model_labels,
        "note": row.note,
        "actor": row.actor,
        "source": row.source,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
    }


def feedback_export(store: Store, since: datetime | None) -> list[dict[str, Any]]:
    """Corrected messages in the in-domain training format (classifiers/data/WRITING_GUIDE.md)."""
    query = (
        select(Feedback, MessageRecord)
        .join(MessageRecord, Feedback.message_id == MessageRecord.id)
        .order_by(Feedback.id)
    )
    if since is not None:
        query = query.where(Feedback.updated_at >= since)
    rows = []
    with store.session() as s:
        for fb, rec in s.execute(query):
            model_labels = sorted(rec.labels or fb.model_labels or [])
            labels = sorted(fb.labels)
            rows.append({
                "id": f"ws-{rec.id}",
                "lang": rec.language or UNDETERMINED,
                "variety": "",
                # Every corrected mail is its own scenario: no two are paraphrases.
                "scenario": f"ws-s{rec.id}",
                "product": "",
                "subject": fb.subject or rec.subject or "",
                "body": fb.text or rec.body or "",
                "labels": labels,
                # What the model flagged and a human cleared is a hard negative by definition.
                "hard_negative": not labels and bool(model_labels),
                "model_labels": model_labels,
            })
    return rows


# -- stats -----------------------------------------------------------------


def day_counts(store: Store, since: datetime) -> list[tuple[str, str | None, str, str | None, int]]:
    """(day, language, state, labels as JSON text, count) since ``since``."""
    day = func.date(MessageRecord.received_at).label("day")
    labels = _labels_text().label("labels")
    query = (
        select(day, MessageRecord.language, MessageRecord.state, labels, func.count())
        .where(MessageRecord.received_at >= since)
        .group_by(day, MessageRecord.language, MessageRecord.state, labels)
    )
    with store.session() as s:
        return [(str(d), lang, state, lab, n) for d, lang, state, lab, n in s.execute(query)]


@dataclass(frozen=True, slots=True)
class Lag:
    pending: int
    oldest_pending_at: datetime | None
    last_handled_at: datetime | None


def lag(store: Store) -> Lag:
    with store.session() as s:
        pending, oldest = s.execute(
            select(func.count(), func.min(MessageRecord.received_at)).where(MessageRecord.state.not_in(DONE_STATES))
        ).one()
        last = s.execute(
            select(func.max(MessageRecord.updated_at)).where(MessageRecord.state.in_(DONE_STATES))
        ).scalar()
    return Lag(pending, as_utc(oldest) if oldest else None, as_utc(last) if last else None)


def checkpoints(store: Store) -> dict[tuple[str, str], datetime]:
    with store.session() as s:
        return {(c.mailbox, c.folder): as_utc(c.updated_at) for c in s.scalars(select(Checkpoint))}


# -- drafts (the playbook's table) -------------------------------------------------


# Built and waiting for a person to approve or reject (send_failed: approve again).
PENDING_DRAFT_STATES = ("ready", "appended", "send_failed")


def pending_drafts(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Draft).where(Draft.state.in_(PENDING_DRAFT_STATES))) or 0)


def row_dict(row: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The columns of an ORM row (loaded, detached) as a dict, times in UTC."""
    out = {}
    for column in row.__table__.columns:
        if column.key in exclude:
            continue
        value = getattr(row, column.key)
        out[column.key] = as_utc(value) if isinstance(value, datetime) else value
    return out


def record_audit(store: Store, *, actor: str, action: str, target: str | None, old: Any, new: Any) -> None:
    with store.session() as s:
        audit(s, actor=actor, action=action, target=target, old=old, new=new)
