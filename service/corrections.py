"""Corrections from the mail client: agents retag and refile, WarningShot learns.

Like Rspamd learning from moves into and out of the Junk folder, an agent who
removes a label keyword, adds one, moves a message out of the folder
WarningShot moved it to, or files a message into a label folder, has corrected
its labels. The correction is stored like one made through the API (the
``feedback`` table) and becomes training data for ``warningshot retrain``.

What counts is a *change*, never the state: the keywords of each copy of a
message are compared with those last seen on it (at first, with those the
daemon set). So a correction made through the API is not undone because the
keyword is still on the message, and a message is never corrected twice for
the same change. Folder moves are recognised when a copy is first seen: in a
label folder WarningShot did not file it in, or back in a watched folder after
WarningShot moved it out.

One thread per mailbox, on a connection of its own; with CONDSTORE it asks
each folder only for what changed since the last check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import MailboxAuthError, MailboxError, StoreError, WarningShotError
from service.mail.parse import parse_message
from service.mailbox.base import FlagReader, FlagSighting
from service.metrics import Metrics
from service.settings import CorrectionSettings, MailboxSettings, TaggingSettings
from service.store import Store
from service.store import corrections as queries
from service.store.db import DONE_STATES
from service.store.tables import MessageRecord
from service.watcher import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    label: str
    added: bool
    reason: str

    def __str__(self) -> str:
        return f"{'+' if self.added else '-'}{self.label}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one sighting of a message says about its labels, and how to fix the copy's keywords."""

    labels: frozenset[str]
    changes: tuple[Change, ...] = ()
    add_keywords: tuple[str, ...] = ()
    remove_keywords: tuple[str, ...] = ()


def judge(
    current: frozenset[str],
    *,
    folder: str,
    keywords: frozenset[str],
    before: frozenset[str] | None,
    own: bool,
    action: Mapping[str, Any],
    watched: Collection[str],
    tagging: TaggingSettings,
) -> Verdict:
    """The labels a message has after an agent's change to one copy of it.

    ``before`` is the keywords last seen on this copy, None when it is seen
    for the first time; ``own`` says it is the copy the daemon handled, whose
    keywords before are the ones the daemon set.
    """
    labels = set(current)
    changes: list[Change] = []
    add: list[str] = []
    remove: list[str] = []
    placed = {action.get("move_to"), *action.get("copy_to", ())}
    for label, route in tagging.routes.items():
        kw = route.keyword
        if before is None and not own:
            if route.folder and folder == route.folder and folder not in placed:
                if label not in labels:
                    labels.add(label)
                    changes.append(Change(label, True, f"filed into {folder}"))
                if kw not in keywords:
                    add.append(kw)
            elif route.mode == "move" and action.get("move_to") == route.folder and folder in watched:
                if label in labels:
                    labels.discard(label)
                    changes.append(Change(label, False, f"moved out of {route.folder} into {folder}"))
                if kw in keywords:
                    remove.append(kw)
            continue
        seen = before if before is not None else frozenset(action.get("keywords", ()))
        if kw in keywords and kw not in seen and label not in labels:
            labels.add(label)
            changes.append(Change(label, True, f"keyword {kw} added in {folder}"))
        elif kw not in keywords and kw in seen and label in labels:
            labels.discard(label)
            changes.append(Change(label, False, f"keyword {kw} removed in {folder}"))
    return Verdict(frozenset(labels), tuple(changes), tuple(add), tuple(remove))


@dataclass
class _Seen:
    """One sighting, resolved to the decided record of its message (or to none)."""

    sighting: FlagSighting
    record: MessageRecord | None
    own: bool
    before: frozenset[str] | None


@dataclass
class CorrectionSync:
    """One pass over a mailbox's watched and label folders."""

    mailbox: MailboxSettings
    store: Store
    tagging: TaggingSettings
    settings: CorrectionSettings
    metrics: Metrics = field(default_factory=Metrics)
    max_chars: int = 20000

    @property
    def folders(self) -> list[str]:
        label_folders = [r.folder for r in self.tagging.routes.values() if r.folder]
        return list(dict.fromkeys([*self.mailbox.folders, *label_folders]))

    @property
    def _relevant(self) -> frozenset[str]:
        return frozenset(r.keyword for r in self.tagging.routes.values())

    def run_once(self, reader: FlagReader) -> int:
        """Check every folder once; the number of corrections recorded."""
        recorded = sum(self._sync_folder(reader, folder) for folder in self.folders)
        log.debug("%s: correction sync pass: %d correction(s)", self.mailbox.name, recorded)
        return recorded

    def _sync_folder(self, reader: FlagReader, folder: str) -> int:
        name = self.mailbox.name
        state = queries.folder_sync(self.store, name, folder)
        changes = reader.changes(
            folder,
            state.uidvalidity if state else None,
            state.highest_modseq if state and self.settings.use_condstore else None,
            self.settings.max_messages,
        )
        if changes is None:
            return 0
        resolved, deferred = self._resolve(reader, folder, changes.uidvalidity, changes.sightings)
        current = queries.current_labels(self.store, [s.record for s in resolved if s.record is not None])
        recorded = 0
        remember: dict[int, tuple[int | None, frozenset[str]]] = {}
        for item in resolved:
            uid, now = item.sighting.uid, item.sighting.flags & self._relevant
            if item.record is None:
                remember[uid] = (None, now)
                continue
            record = item.record
            verdict = judge(
                current[record.id], folder=folder, keywords=now, before=item.before, own=item.own,
                action=record.action or {}, watched=self.mailbox.folders, tagging=self.tagging,
            )
            if verdict.labels != current[record.id]:
                self._record(reader, folder, uid, record, verdict)
                current[record.id] = verdict.labels
                recorded += 1
            if verdict.add_keywords or verdict.remove_keywords:
                # The agent's client shows what WarningShot now believes.
                reader.set_keywords(folder, uid, verdict.add_keywords, verdict.remove_keywords)
                now = (now | set(verdict.add_keywords)) - set(verdict.remove_keywords)
            baseline = item.before if item.before is not None else (
                frozenset(record.action.get("keywords", ())) & self._relevant if item.own and record.action else None
            )
            if now != baseline:
                remember[uid] = (record.id, now)
        queries.save_sightings(self.store, name, folder, changes.uidvalidity, remember)
        if not deferred:
            # Mail the pipeline has not finished with is asked for again next time.
            queries.save_folder_sync(self.store, name, folder, changes.uidvalidity, changes.highest_modseq)
        return recorded

    def _resolve(self, reader: FlagReader, folder: str, uidvalidity: int,
                 sightings: tuple[FlagSighting, ...]) -> tuple[list[_Seen], bool]:
        """Find each sighting's decided record: by location, by a sighting before, or by Message-ID.

        Also says whether a sighting was put off because the pipeline is not done with it.
        """
        name = self.mailbox.name
        uids = [s.uid for s in sightings]
        located = queries.records_at(self.store, name, folder, uidvalidity, uids)
        seen = queries.sightings(self.store, name, folder, uidvalidity, uids)
        by_id = queries.records_by_id(self.store, (r.record_id for r in seen.values() if r.record_id is not None))
        watched = folder in self.mailbox.folders
        out: list[_Seen] = []
        unknown: list[FlagSighting] = []
        deferred = False
        for sighting in sightings:
            here = located.get(sighting.uid)
            if watched and (here is None or here.state not in DONE_STATES):
                deferred = True  # the pipeline has not finished with it: nothing to correct yet
                continue
            if here is not None and here.state == "done" and here.labels is not None:
                row = seen.get(sighting.uid)
                out.append(_Seen(sighting, here, True, frozenset(row.keywords) if row else None))
            elif sighting.uid in seen:
                row = seen[sighting.uid]
                record = by_id.get(row.record_id) if row.record_id is not None else None
                out.append(_Seen(sighting, record, False, frozenset(row.keywords)))
            else:
                unknown.append(sighting)
        headers = reader.headers(folder, [s.uid for s in unknown])
        parsed = {}
        for uid, header in headers.items():
            try:
                parsed[uid] = parse_message(header, max_chars=self.max_chars)
            except WarningShotError:
                continue
        originals = queries.decided_records(self.store, name, (p.key for p in parsed.values()))
        for sighting in unknown:
            message = parsed.get(sighting.uid)
            record = originals.get(message.key) if message is not None else None
            if record is not None and record.sender != message.sender:  # type: ignore[union-attr]
                record = None  # a reused Message-ID from someone else is another message
            out.append(_Seen(sighting, record, False, None))
        return out, deferred

    def _record(self, reader: FlagReader, folder: str, uid: int, record: MessageRecord, verdict: Verdict) -> None:
        from service.api.repository import save_feedback  # the one write path for corrections

        subject = text = None
        if self.settings.keep_text:
            raw = reader.fetch(folder, uid)
            if raw is not None:
                try:
                    message = parse_message(raw, max_chars=self.max_chars)
                    subject, text = message.subject, message.text
                except WarningShotError:
                    log.warning("%s/%s uid %d: corrected mail could not be parsed; its text is not kept",
                                self.mailbox.name, folder, uid)
        note = "; ".join(str(c) for c in verdict.changes)
        save_feedback(
            self.store, record.id, sorted(verdict.labels), note=note,
            actor=f"imap:{self.mailbox.name}", source="imap", subject=subject, text=text,
        )
        for change in verdict.changes:
            change_name = "added" if change.added else "removed"
            self.metrics.corrections.labels(self.mailbox.name, change.label, change_name).inc()
        log.info("%s/%s uid %d: labels of message %d corrected by an agent: %s",
                 self.mailbox.name, folder, uid, record.id, note)


class CorrectionWatcher:
    """Runs :class:`CorrectionSync` every ``interval_seconds`` until ``stop``; reconnects with backoff."""

    def __init__(
        self,
        sync: CorrectionSync,
        stop: threading.Event,
        *,
        opener: Callable[[MailboxSettings, bool], FlagReader],
        backoff: Backoff,
    ) -> None:
        self.sync = sync
        self.stop = stop
        self.opener = opener
        self.backoff = backoff
        self.name = f"{sync.mailbox.name}/corrections"
        self.passes = 0

    def run(self) -> None:
        settings = self.sync.settings
        while not self.stop.is_set():
            reader: FlagReader | None = None
            try:
                reader = self.opener(self.sync.mailbox, settings.use_condstore)
                self.backoff.reset()
                while not self.stop.is_set():
                    self.sync.run_once(reader)
                    self.passes += 1
                    self.stop.wait(settings.interval_seconds)
            except MailboxAuthError as exc:
                log.error("%s: %s", self.name, exc)
            except (MailboxError, StoreError) as exc:
                log.warning("%s: %s", self.name, exc)
            except Exception:  # noqa: BLE001 - the daemon must outlive any bug
                log.exception("%s: unexpected error", self.name)
            finally:
                if reader is not None:
                    reader.close()
            self.stop.wait(self.backoff.next_delay())
