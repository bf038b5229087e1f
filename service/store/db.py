"""The store: one object that owns the database engine and the queries the daemon needs."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import StoreError
from service.store.tables import Checkpoint, MessageRecord, utcnow

_MIGRATIONS = Path(__file__).with_name("migrations")

# States after which a message needs nothing more. "skipped" is a second copy
# of a message already handled (same Message-ID), "vanished" one deleted
# before it could be fetched.
DONE_STATES = ("done", "quarantined", "skipped", "vanished")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a message lives on the server; the store's identity for it."""

    mailbox: str
    folder: str
    uidvalidity: int
    uid: int


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a watcher writes; busy_timeout makes the
    # watcher threads queue for the write lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """Database access for the daemon, the CLI and the API.

    Every public method is one short transaction, so a crash leaves the store
    at a message boundary.
    """

    def __init__(self, url: str, *, store_bodies: bool = False) -> None:
        self.url = url
        self.store_bodies = store_bodies
        try:
            if url.startswith("sqlite:///"):
                path = url.removeprefix("sqlite:///")
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the store {self._safe_url()}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrate_lock = threading.Lock()

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else "(url hidden)"

    def migrate(self) -> None:
        """Bring the schema to the newest revision (safe to call on every start)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._migrate_lock:
            try:
                with self.engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot migrate the store {self._safe_url()}: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"store operation failed: {exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- checkpoints -------------------------------------------------------

    def checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        with self.session() as s:
            return s.get(Checkpoint, (mailbox, folder))

    def set_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self.session() as s:
            self._write_checkpoint(s, mailbox, folder, uidvalidity, last_uid)

    @staticmethod
    def _write_checkpoint(s: Session, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        cp = s.get(Checkpoint, (mailbox, folder))
        if cp is None:
            s.add(Checkpoint(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid))
        elif cp.uidvalidity != uidvalidity or last_uid > cp.last_uid:
            cp.uidvalidity, cp.last_uid = uidvalidity, last_uid

    # -- messages ----------------------------------------------------------

    def record_at(self, loc: Location) -> MessageRecord | None:
        with self.session() as s:
            return s.scalars(
                select(MessageRecord).filter_by(
                    mailbox=loc.mailbox, folder=loc.folder, uidvalidity=loc.uidvalidity, uid=loc.uid
                )
            ).first()

    def handled_keys(self, mailbox: str, folder: str, keys: Iterable[str]) -> dict[str, MessageRecord]:
        """Finished records of the same messages, by key (for rescans and duplicate deliveries)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        with self.session() as s:
            found = s.scalars(
                select(MessageRecord)
                .filter_by(mailbox=mailbox, folder=folder)
                .where(MessageRecord.message_key.in_(keys), MessageRecord.state.in_(DONE_STATES))
                .order_by(MessageRecord.id)
            )
            out: dict[str, MessageRecord] = {}
            for rec in found:
                out.setdefault(rec.message_key or "", rec)
            return out

    def begin_attempts(self, locs: Sequence[Location]) -> dict[int, MessageRecord]:
        """Count one more processing attempt per message, committed before the work starts.

        Counting first means a message that crashes the whole process is still
        recognised as poison after enough restarts. All ``locs`` share one folder.
        """
        if not locs:
            return {}
        first = locs[0]
        with self.session() as s:
            existing = {
                rec.uid: rec
                for rec in s.scalars(
                    select(MessageRecord)
                    .filter_by(mailbox=first.mailbox, folder=first.folder, uidvalidity=first.uidvalidity)
                    .where(MessageRecord.uid.in_([loc.uid for loc in locs]))
                )
            }
            for loc in locs:
                if loc.uid not in existing:
                    existing[loc.uid] = MessageRecord(
                        mailbox=loc.mailbox, folder=loc.folder, uidvalidity=loc.uidvalidity, uid=loc.uid,
                        state="processing", attempts=0,
                    )
                    s.add(existing[loc.uid])
                existing[loc.uid].attempts += 1
            s.flush()
            return existing

    def begin_attempt(self, loc: Location) -> MessageRecord:
        return self.begin_attempts([loc])[loc.uid]

    def record_decisions(self, decisions: Mapping[int, dict[str, Any]]) -> None:
        """Store what was parsed and decided, per record id; effects follow, then :meth:`finish_many`."""
        with self.session() as s:
            for record_id, fields in decisions.items():
                rec = s.get_one(MessageRecord, record_id)
                for name, value in fields.items():
                    if name != "body" or self.store_bodies:
                        setattr(rec, name, value)
                rec.state = "decided"
                rec.error = None

    def record_decision(self, record_id: int, **fields: Any) -> None:
        self.record_decisions({record_id: fields})

    def forget_attempts(self, record_ids: Iterable[int]) -> None:
        """Undo :meth:`begin_attempts` when the connection, not the message, failed."""
        with self.session() as s:
            for record_id in record_ids:
                rec = s.get_one(MessageRecord, record_id)
                rec.attempts = max(0, rec.attempts - 1)

    def forget_attempt(self, record_id: int) -> None:
        self.forget_attempts([record_id])

    def record_failure(self, record_id: int, error: str) -> None:
        with self.session() as s:
            rec = s.get_one(MessageRecord, record_id)
            rec.error = error
            rec.updated_at = utcnow()

    def finish_many(self, finished: Sequence[tuple[int, str, dict[str, Any]]], checkpoint: Location | None) -> None:
        """Mark messages handled and move the checkpoint, in one transaction.

        ``checkpoint`` must be a UID below which every message of the folder
        is finished; the caller knows, the store cannot.
        """
        with self.session() as s:
            for record_id, state, fields in finished:
                rec = s.get_one(MessageRecord, record_id)
                rec.state = state
                for name, value in fields.items():
                    setattr(rec, name, value)
            if checkpoint is not None:
                self._write_checkpoint(s, checkpoint.mailbox, checkpoint.folder, checkpoint.uidvalidity, checkpoint.uid)

    def finish(self, record_id: int, loc: Location, *, state: str = "done", **fields: Any) -> None:
        """Mark one message handled and move the checkpoint past it, atomically."""
        self.finish_many([(record_id, state, fields)], loc)

    def unfinished(self, mailbox: str, folder: str, uidvalidity: int) -> list[MessageRecord]:
        """Records whose decision may be only partly applied (a crash between effects)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(MessageRecord)
                    .filter_by(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, state="decided")
                    .order_by(MessageRecord.uid)
                )
            )

    def count_by_state(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(MessageRecord.state, func.count()).group_by(MessageRecord.state))
            return {state: n for state, n in rows}

    def messages(self, mailbox: str | None = None) -> list[MessageRecord]:
        with self.session() as s:
            query = select(MessageRecord).order_by(MessageRecord.id)
            if mailbox:
                query = query.filter_by(mailbox=mailbox)
            return list(s.scalars(query))
