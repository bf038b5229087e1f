"""The correction sync's queries; each function is one short transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import select

from service.store.api_tables import Feedback
from service.store.correction_tables import FolderSync, KeywordSighting
from service.store.db import Store
from service.store.tables import MessageRecord


def folder_sync(store: Store, mailbox: str, folder: str) -> FolderSync | None:
    with store.session() as s:
        return s.get(FolderSync, (mailbox, folder))


def save_folder_sync(store: Store, mailbox: str, folder: str, uidvalidity: int, highest_modseq: int | None) -> None:
    with store.session() as s:
        row = s.get(FolderSync, (mailbox, folder))
        if row is None:
            s.add(FolderSync(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, highest_modseq=highest_modseq))
        else:
            row.uidvalidity, row.highest_modseq = uidvalidity, highest_modseq


def records_at(
    store: Store, mailbox: str, folder: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, MessageRecord]:
    """The records of these UIDs, whatever their state."""
    if not uids:
        return {}
    with store.session() as s:
        rows = s.scalars(
            select(MessageRecord).filter_by(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity)
            .where(MessageRecord.uid.in_(list(uids)))
        )
        return {r.uid: r for r in rows}


def decided_records(store: Store, mailbox: str, keys: Iterable[str]) -> dict[str, MessageRecord]:
    """The first finished record with a decision, per message key, in any folder of ``mailbox``."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    with store.session() as s:
        rows = s.scalars(
            select(MessageRecord)
            .filter_by(mailbox=mailbox, state="done")
            .where(MessageRecord.message_key.in_(keys), MessageRecord.labels.is_not(None))
            .order_by(MessageRecord.id)
        )
        out: dict[str, MessageRecord] = {}
        for rec in rows:
            out.setdefault(rec.message_key or "", rec)
        return out


def records_by_id(store: Store, ids: Iterable[int]) -> dict[int, MessageRecord]:
    ids = list(set(ids))
    if not ids:
        return {}
    with store.session() as s:
        return {r.id: r for r in s.scalars(select(MessageRecord).where(MessageRecord.id.in_(ids)))}


def current_labels(store: Store, records: Iterable[MessageRecord]) -> dict[int, frozenset[str]]:
    """A message's labels as they stand now: the latest correction, else the model's decision."""
    records = list(records)
    if not records:
        return {}
    with store.session() as s:
        rows = s.execute(select(Feedback.message_id, Feedback.labels)
                         .where(Feedback.message_id.in_([r.id for r in records])))
        corrected = {record_id: labels for record_id, labels in rows}
    return {r.id: frozenset(corrected.get(r.id, r.labels or [])) for r in records}


def sightings(
    store: Store, mailbox: str, folder: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, KeywordSighting]:
    if not uids:
        return {}
    with store.session() as s:
        rows = s.scalars(
            select(KeywordSighting).filter_by(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity)
            .where(KeywordSighting.uid.in_(list(uids)))
        )
        return {r.uid: r for r in rows}


def save_sightings(
    store: Store, mailbox: str, folder: str, uidvalidity: int, seen: Mapping[int, tuple[int | None, Sequence[str]]]
) -> None:
    """Remember the keywords seen per UID: ``{uid: (record id, keywords)}``."""
    if not seen:
        return
    with store.session() as s:
        for uid, (record_id, keywords) in seen.items():
            row = s.get(KeywordSighting, (mailbox, folder, uidvalidity, uid))
            if row is None:
                s.add(KeywordSighting(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, uid=uid,
                                      record_id=record_id, keywords=sorted(keywords)))
            else:
                row.record_id, row.keywords = record_id, sorted(keywords)
