"""The one path of a message: fetch → parse → classify → decide → act → record.

Exactly-once rests on three rules. The attempt is counted in the store before
any work, so a message that crashes the process is still recognised as poison.
The decision is stored before its effects, and the effects are idempotent, so
a crash between them is repaired by applying the stored decision again. The
checkpoint moves past a message in the same transaction that marks it done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from classifiers.interface import Classifier, Thresholds
from service.decision import Decision, decide
from service.errors import MailboxConnectionError, StoreError, WarningShotError
from service.mail.message import ParsedMessage
from service.mail.parse import parse_message
from service.mailbox.base import FetchedMessage, FolderSession
from service.metrics import Metrics
from service.settings import TaggingSettings
from service.store import MessageRecord, Store
from service.store.db import DONE_STATES, Location

log = logging.getLogger(__name__)


def batched(items: Sequence[int], size: int) -> Iterator[tuple[int, ...]]:
    # itertools.batched arrived in Python 3.12.
    it = iter(items)
    while chunk := tuple(islice(it, size)):
        yield chunk


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message, for logs, metrics and tests."""

    uid: int
    state: str
    labels: tuple[str, ...] = ()


@dataclass(slots=True)
class _Work:
    loc: Location
    record: MessageRecord
    fetched: FetchedMessage
    parsed: ParsedMessage | None = None
    scores: dict[str, float] | None = None


class Pipeline:
    """Handles the new messages of a folder session; shared by all watchers."""

    def __init__(
        self,
        *,
        classifier: Classifier,
        store: Store,
        tagging: TaggingSettings,
        thresholds: Callable[[], Thresholds],
        max_attempts: int = 3,
        batch_size: int = 16,
        max_chars: int = 20000,
        dry_run: bool = False,
        on_outcome: Callable[[Location, Outcome], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.classifier = classifier
        self.store = store
        self.tagging = tagging
        self.thresholds = thresholds
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.dry_run = dry_run
        self.on_outcome = on_outcome
        self.metrics = metrics or Metrics()
        # One model call at a time: torch already uses every core for one batch.
        self._model_lock = threading.Lock()

    # -- entry points --------------------------------------------------------

    def settle(self, session: FolderSession) -> None:
        """Close records left 'decided' whose message has since left the folder.

        That happens when the process died after moving a message and before
        recording it: the move was the last effect, so the work is complete.
        """
        for rec in self.store.unfinished(session.mailbox, session.folder, session.uidvalidity):
            if not session.contains(rec.uid):
                loc = Location(session.mailbox, session.folder, session.uidvalidity, rec.uid)
                self.store.finish(rec.id, loc)
                log.info("%s/%s uid %d: completed after restart (moved before the crash)", loc.mailbox, loc.folder, loc.uid)

    def handle_new(self, session: FolderSession, stop: threading.Event) -> list[Outcome]:
        """Process every message above the checkpoint, in UID order."""
        checkpoint = self.store.checkpoint(session.mailbox, session.folder)
        after = 0
        if checkpoint is not None:
            if checkpoint.uidvalidity == session.uidvalidity:
                after = checkpoint.last_uid
            else:
                # The folder was recreated or renumbered: every UID is new, so
                # rescan and let the Message-ID check skip what was handled.
                log.warning(
                    "%s/%s: UIDVALIDITY changed %d -> %d; rescanning",
                    session.mailbox, session.folder, checkpoint.uidvalidity, session.uidvalidity,
                )
                self.store.set_checkpoint(session.mailbox, session.folder, session.uidvalidity, 0)
        outcomes: list[Outcome] = []
        for chunk in batched(session.uids_after(after), self.batch_size):
            if stop.is_set():
                break
            outcomes.extend(self._handle_chunk(session, chunk, stop))
        return outcomes

    # -- one chunk -----------------------------------------------------------

    def _handle_chunk(self, session: FolderSession, uids: Sequence[int], stop: threading.Event) -> list[Outcome]:
        fetched = session.fetch(uids)
        work: list[_Work] = []
        outcomes: list[Outcome] = []
        for uid in uids:
            loc = Location(session.mailbox, session.folder, session.uidvalidity, uid)
            record = self.store.begin_attempt(loc)
            if uid not in fetched:
                outcomes.append(self._finish(loc, record, "vanished"))
                continue
            work.append(_Work(loc, record, fetched[uid]))
        self._parse_and_score(work)
        for item in work:
            if stop.is_set():
                # Unstarted messages keep their attempt count honest.
                self.store.forget_attempt(item.record.id)
                continue
            outcomes.append(self._handle_one(session, item))
        return outcomes

    def _parse_and_score(self, work: list[_Work]) -> None:
        """Parse and classify in one batch; failures are left for _handle_one to retry alone."""
        fresh = [w for w in work if w.record.state == "processing" and w.record.attempts <= self.max_attempts]
        for item in fresh:
            try:
                item.parsed = parse_message(item.fetched.raw, max_chars=self.max_chars)
            except WarningShotError as exc:
                self.store.record_failure(item.record.id, f"parse: {exc}")
        scorable = [w for w in fresh if w.parsed is not None]
        if not scorable:
            return
        try:
            scores = self._predict([w.parsed.text for w in scorable if w.parsed])
        except Exception as exc:  # noqa: BLE001 - a poison text must not stop the batch
            log.warning("batch classification failed (%s); classifying one by one", exc.__class__.__name__)
            return
        for item, score in zip(scorable, scores, strict=True):
            item.scores = score

    def _handle_one(self, session: FolderSession, item: _Work) -> Outcome:
        while True:
            try:
                return self._attempt(session, item)
            except MailboxConnectionError:
                self.store.forget_attempt(item.record.id)
                raise
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure counts towards quarantine
                error = f"{exc.__class__.__name__}: {exc}"
                log.warning("%s uid %d: attempt %d failed: %s", item.loc.folder, item.loc.uid, item.record.attempts, error)
                self.store.record_failure(item.record.id, error)
                self.metrics.errors.inc()
                if item.record.attempts >= self.max_attempts:
                    return self._quarantine(session, item, error)
                item.record = self.store.begin_attempt(item.loc)
                item.parsed = item.scores = None

    def _attempt(self, session: FolderSession, item: _Work) -> Outcome:
        record, loc = item.record, item.loc
        if record.state in DONE_STATES:
            return self._finish(loc, record, record.state)
        if record.attempts > self.max_attempts:
            return self._quarantine(session, item, record.error or f"failed {self.max_attempts} times")
        if record.state == "decided":
            # A crash interrupted the effects: re-apply the stored decision
            # rather than classify again, so the outcome cannot change.
            decision = Decision.from_record(record.labels or [], record.action or {})
            self._apply(session, loc.uid, decision, record.message_id)
            return self._finish(loc, record, "done", labels=decision.labels)
        parsed = item.parsed or parse_message(item.fetched.raw, max_chars=self.max_chars)
        original = self.store.handled_with_key(loc.mailbox, loc.folder, parsed.key)
        if original is not None:
            decision = Decision.from_record(original.labels or [], original.action or {})
            self._apply(session, loc.uid, Decision((), decision.keywords), None)
            return self._finish(loc, record, "skipped", error=f"same message as record {original.id}")
        if item.scores is None:
            item.scores = self._predict([parsed.text])[0]
        decision = decide(item.scores, parsed.language, self.thresholds(), self.tagging)
        evidence: dict[str, str] = {}
        if decision.labels:
            with self._model_lock:
                evidence = self.classifier.evidence(parsed.text, decision.labels)
        self.store.record_decision(
            record.id,
            message_key=parsed.key,
            message_id=parsed.message_id,
            sender=parsed.sender,
            subject=parsed.subject,
            language=parsed.language,
            scores=item.scores,
            labels=list(decision.labels),
            evidence=evidence,
            action=decision.as_record(),
            body=parsed.body,
        )
        self._apply(session, loc.uid, decision, parsed.message_id)
        return self._finish(loc, record, "done", labels=decision.labels)

    def _predict(self, texts: list[str]) -> list[dict[str, float]]:
        with self._model_lock, self.metrics.classify_seconds.time():
            return self.classifier.predict(texts)

    # -- effects ---------------------------------------------------------------

    def _apply(self, session: FolderSession, uid: int, decision: Decision, message_id: str | None) -> None:
        if self.dry_run:
            return
        session.add_keywords(uid, decision.keywords)
        session.add_gmail_labels(uid, decision.gmail_labels)
        for folder in decision.copy_to:
            session.copy_to(uid, folder, message_id)
        if decision.move_to:
            # Last: after a move the message is no longer here to tag.
            session.move_to(uid, decision.move_to)

    def _quarantine(self, session: FolderSession, item: _Work, error: str) -> Outcome:
        log.error("%s/%s uid %d: quarantined after %d attempts", item.loc.mailbox, item.loc.folder, item.loc.uid, item.record.attempts)
        self.metrics.quarantined.inc()
        if not self.dry_run:
            session.add_keywords(item.loc.uid, [self.tagging.error_keyword])
        return self._finish(item.loc, item.record, "quarantined", error=error)

    def _finish(self, loc: Location, record: MessageRecord, state: str, *, labels: Sequence[str] = (), error: str | None = None) -> Outcome:
        fields = {"error": error} if error is not None else {}
        self.store.finish(record.id, loc, state=state, **fields)
        outcome = Outcome(loc.uid, state, tuple(labels))
        self.metrics.messages.labels(loc.mailbox, state).inc()
        for label in labels:
            self.metrics.flagged.labels(label).inc()
        if self.on_outcome is not None:
            self.on_outcome(loc, outcome)
        if state == "done":
            log.info("%s/%s uid %d: %s", loc.mailbox, loc.folder, loc.uid, ",".join(labels) or "clean")
        return outcome
