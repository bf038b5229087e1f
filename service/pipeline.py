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
from typing import TYPE_CHECKING

from classifiers.interface import Classifier, Thresholds, model_version
from service.decision import Decision, decide
from service.errors import MailboxConnectionError, StoreError, WarningShotError
from service.mail.message import ParsedMessage
from service.mail.parse import parse_message
from service.mailbox.base import FetchedMessage, FolderSession
from service.metrics import Metrics
from service.settings import TaggingSettings
from service.store import MessageRecord, Store
from service.store.db import DONE_STATES, Location

if TYPE_CHECKING:
    from service.playbook.engine import Playbook

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
    model: str = ""


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
        on_outcome: Callable[[str, str, Outcome], None] | None = None,
        metrics: Metrics | None = None,
        playbook: Playbook | None = None,
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
        self.playbook = playbook
        # One model call at a time: torch already uses every core for one batch.
        self.model_lock = threading.Lock()

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
        """Handle a chunk: the common case in a few round trips, the rest one by one.

        Fresh messages are parsed, classified, recorded and tagged together
        (one transaction per step, one STORE per keyword set). Anything out of
        the ordinary (a retry, a crash survivor, a duplicate, a routed message,
        an error) takes the per-message path, which owns retries and quarantine.
        """
        fetched = session.fetch(uids)
        locs = {uid: Location(session.mailbox, session.folder, session.uidvalidity, uid) for uid in uids}
        records = self.store.begin_attempts(list(locs.values()))
        work = [_Work(locs[uid], records[uid], fetched[uid]) for uid in uids if uid in fetched]
        finished = [(records[uid].id, Outcome(uid, "vanished")) for uid in uids if uid not in fetched]
        fresh = [w for w in work if w.record.state == "processing" and w.record.attempts <= self.max_attempts]
        finished += self._apply_batch(session, self._decide_batch(session, fresh))
        done_ids = {record_id for record_id, _ in finished}
        slow = [w for w in work if w.record.id not in done_ids]
        self._finish_batch(session, finished, slow)
        outcomes = [outcome for _, outcome in finished]
        for item in slow:
            if stop.is_set():
                # Unstarted messages keep their attempt count honest.
                self.store.forget_attempt(item.record.id)
                continue
            outcomes.append(self._handle_one(session, item))
        if slow and len(outcomes) == len(uids):
            # Each slow message moved the checkpoint only to itself; the whole
            # chunk is finished now, so it may pass the batch's messages too.
            self.store.set_checkpoint(session.mailbox, session.folder, session.uidvalidity, max(uids))
        return sorted(outcomes, key=lambda o: o.uid)

    def _decide_batch(self, session: FolderSession, fresh: list[_Work]) -> list[tuple[_Work, Decision]]:
        """Parse, classify, decide and record ``fresh``; what fails is left for the slow path."""
        for item in fresh:
            try:
                item.parsed = parse_message(item.fetched.raw, max_chars=self.max_chars)
            except WarningShotError as exc:
                self.store.record_failure(item.record.id, f"parse: {exc}")
        parsed = [(w, w.parsed) for w in fresh if w.parsed is not None]
        duplicates = self.store.handled_keys(session.mailbox, session.folder, (p.key for _, p in parsed))
        scorable = [(w, p) for w, p in parsed if not _same_message(duplicates.get(p.key), p)]
        if not scorable:
            return []
        decided: list[tuple[_Work, Decision]] = []
        evidence: dict[int, dict[str, str]] = {}
        try:
            all_scores, model = self._predict([p.text for _, p in scorable])
            thresholds = self.thresholds()
            for (item, message), scores in zip(scorable, all_scores, strict=True):
                item.scores, item.model = scores, model
                decision = decide(scores, message.language, thresholds, self.tagging)
                if decision.labels:
                    with self.model_lock:
                        evidence[item.record.id] = self.classifier.evidence(message.text, decision.labels)
                decided.append((item, decision))
        except Exception as exc:  # noqa: BLE001 - a poison text must not stop the batch
            log.warning("batch classification failed (%s); classifying one by one", exc.__class__.__name__)
            for item, _ in scorable:
                item.scores = None
            return []
        fields = {item.record.id: _record_fields(item, decision, evidence.get(item.record.id, {})) for item, decision in decided}
        decided = [(item, d) for item, d in decided if self._plan(item, d, fields[item.record.id])]
        fields = {item.record.id: fields[item.record.id] for item, _ in decided}
        if not decided:
            return []
        self.store.record_decisions(fields)
        for item, _ in decided:
            # Keep the in-memory record in step, for the slow path's re-apply.
            for name, value in fields[item.record.id].items():
                setattr(item.record, name, value)
            item.record.state = "decided"
        return decided

    def _apply_batch(self, session: FolderSession, decided: list[tuple[_Work, Decision]]) -> list[tuple[int, Outcome]]:
        """Tag decided messages (one STORE per keyword set) and apply their playbook effects.

        Routed messages are left to the slow path.
        """
        if not decided:
            return []
        if not self.dry_run:
            by_keywords: dict[tuple[str, ...], list[int]] = {}
            for item, decision in decided:
                by_keywords.setdefault(decision.keywords, []).append(item.loc.uid)
            try:
                for keywords, uids in by_keywords.items():
                    session.add_keywords(uids, keywords)
            except MailboxConnectionError:
                self.store.forget_attempts(item.record.id for item, _ in decided)
                raise
            except WarningShotError as exc:
                # The slow path re-applies the stored decisions one by one.
                log.warning("%s/%s: batch tagging failed (%s); tagging one by one", session.mailbox, session.folder, exc)
                return []
        finished = []
        try:
            for item, decision in decided:
                if decision.gmail_labels or decision.copy_to or decision.move_to:
                    continue
                if self._apply_playbook_in_batch(session, item):
                    finished.append((item.record.id, Outcome(item.loc.uid, "done", decision.labels)))
        except MailboxConnectionError:
            self.store.forget_attempts(item.record.id for item, _ in decided)
            raise
        return finished

    def _apply_playbook_in_batch(self, session: FolderSession, item: _Work) -> bool:
        """Run the playbook's effects of a batched message; False leaves it to the slow path."""
        step = self._playbook_step(item)
        if step is None:
            return True
        try:
            step(session)
        except (MailboxConnectionError, StoreError):
            raise
        except Exception as exc:  # noqa: BLE001 - the slow path retries it, then quarantines
            log.warning("%s uid %d: playbook effects failed (%s); retrying alone", item.loc.folder, item.loc.uid, exc)
            return False
        return True

    def _finish_batch(self, session: FolderSession, finished: list[tuple[int, Outcome]], slow: list[_Work]) -> None:
        if not finished:
            return
        # The checkpoint may pass only UIDs below the first message still open.
        first_open = min((w.loc.uid for w in slow), default=None)
        closed = [o.uid for _, o in finished if first_open is None or o.uid < first_open]
        checkpoint = Location(session.mailbox, session.folder, session.uidvalidity, max(closed)) if closed else None
        self.store.finish_many([(record_id, o.state, {}) for record_id, o in finished], checkpoint)
        for _, outcome in finished:
            self._report(session.mailbox, session.folder, outcome)

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
            self._apply(session, loc.uid, decision, record.message_id, self._playbook_step(item))
            return self._finish(loc, record, "done", labels=decision.labels)
        parsed = item.parsed or parse_message(item.fetched.raw, max_chars=self.max_chars)
        original = self.store.handled_keys(loc.mailbox, loc.folder, [parsed.key]).get(parsed.key)
        if original is not None and _same_message(original, parsed):
            decision = Decision.from_record(original.labels or [], original.action or {})
            self._apply(session, loc.uid, Decision((), decision.keywords), None)
            return self._finish(loc, record, "skipped", error=f"same message as record {original.id}")
        if item.scores is None:
            scores, item.model = self._predict([parsed.text])
            item.scores = scores[0]
        decision = decide(item.scores, parsed.language, self.thresholds(), self.tagging)
        evidence: dict[str, str] = {}
        if decision.labels:
            with self.model_lock:
                evidence = self.classifier.evidence(parsed.text, decision.labels)
        item.parsed = parsed
        fields = _record_fields(item, decision, evidence)
        self._plan(item, decision, fields, strict=True)
        self.store.record_decision(record.id, **fields)
        item.record.action = fields["action"]  # type: ignore[assignment]
        self._apply(session, loc.uid, decision, parsed.message_id, self._playbook_step(item))
        return self._finish(loc, record, "done", labels=decision.labels)

    def _predict(self, texts: list[str]) -> tuple[list[dict[str, float]], str]:
        """Scores, and the version of the model that gave them (a reload may swap it between calls)."""
        with self.model_lock, self.metrics.classify_seconds.time():
            return self.classifier.predict(texts), model_version(self.classifier)

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """Scores of ``texts``, one model call at a time (the playbook's litmus test shares the model)."""
        return self._predict(texts)[0]

    # -- the playbook: planned with the decision, applied as one more effect -----

    def _plan(self, item: _Work, decision: Decision, fields: dict[str, object], *, strict: bool = False) -> bool:
        """Add the playbook's plan to the decision's record, before that is stored.

        The plan and the sender's move on the ladder are committed together and
        keyed by the message, so deciding again after a crash returns the same
        plan. In the batch path (not ``strict``) a failure leaves the message
        to the one-by-one path, which counts it towards quarantine.
        """
        if self.playbook is None or item.parsed is None:
            return True
        try:
            plan = self.playbook.plan(item.loc, item.record.id, item.parsed, decision.labels, item.scores,
                                      fields.get("evidence") or {})  # type: ignore[arg-type]
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried one by one, then quarantined
            if strict:
                raise
            log.warning("%s uid %d: playbook failed in the batch (%s); retrying alone",
                        item.loc.folder, item.loc.uid, exc)
            return False
        if plan is not None:
            fields["action"] = {**fields["action"], "playbook": plan}  # type: ignore[dict-item]
        return True

    def _playbook_step(self, item: _Work) -> Callable[[FolderSession], None] | None:
        """The playbook's effects for a stored decision, or None when it has nothing to do."""
        plan = (item.record.action or {}).get("playbook")
        if self.playbook is None or not plan or not self.playbook.has_effects(plan):
            return None
        playbook = self.playbook

        def step(session: FolderSession) -> None:
            parsed = item.parsed or parse_message(item.fetched.raw, max_chars=self.max_chars)
            playbook.apply(session, item.loc, plan, parsed, item.fetched.raw)

        return step

    # -- effects ---------------------------------------------------------------

    def _apply(self, session: FolderSession, uid: int, decision: Decision, message_id: str | None,
               playbook_step: Callable[[FolderSession], None] | None = None) -> None:
        if self.dry_run:
            if playbook_step is not None:
                playbook_step(session)  # records and drafts only; it changes nothing on the server either
            return
        session.add_keywords([uid], decision.keywords)
        session.add_gmail_labels(uid, decision.gmail_labels)
        for folder in decision.copy_to:
            session.copy_to(uid, folder, message_id)
        if playbook_step is not None:
            # Before the move: the playbook tags, copies and drafts from the message where it is.
            playbook_step(session)
        if decision.move_to:
            # Last: after a move the message is no longer here to tag.
            session.move_to(uid, decision.move_to)

    def _quarantine(self, session: FolderSession, item: _Work, error: str) -> Outcome:
        log.error("%s/%s uid %d: quarantined after %d attempts", item.loc.mailbox, item.loc.folder, item.loc.uid, item.record.attempts)
        self.metrics.quarantined.inc()
        if not self.dry_run:
            session.add_keywords([item.loc.uid], [self.tagging.error_keyword])
        return self._finish(item.loc, item.record, "quarantined", error=error)

    def _finish(self, loc: Location, record: MessageRecord, state: str, *, labels: Sequence[str] = (), error: str | None = None) -> Outcome:
        fields = {"error": error} if error is not None else {}
        self.store.finish(record.id, loc, state=state, **fields)
        outcome = Outcome(loc.uid, state, tuple(labels))
        self._report(loc.mailbox, loc.folder, outcome)
        return outcome

    def _report(self, mailbox: str, folder: str, outcome: Outcome) -> None:
        self.metrics.messages.labels(mailbox, outcome.state).inc()
        for label in outcome.labels:
            self.metrics.flagged.labels(label).inc()
        if self.on_outcome is not None:
            self.on_outcome(mailbox, folder, outcome)
        if outcome.state == "done":
            log.info("%s/%s uid %d: %s", mailbox, folder, outcome.uid, ",".join(outcome.labels) or "clean")


def _same_message(record: MessageRecord | None, parsed: ParsedMessage) -> bool:
    # The sender must match too: otherwise a new mail reusing an old
    # Message-ID would skip classification.
    return record is not None and record.sender == parsed.sender


def _record_fields(item: _Work, decision: Decision, evidence: dict[str, str]) -> dict[str, object]:
    """The store's columns for a decided message."""
    parsed = item.parsed
    assert parsed is not None
    return {
        "message_key": parsed.key,
        "message_id": parsed.message_id,
        "sender": parsed.sender,
        "subject": parsed.subject,
        "language": parsed.language,
        "scores": item.scores,
        "labels": list(decision.labels),
        "evidence": evidence,
        "action": {**decision.as_record(), "model": item.model},
        "body": parsed.body,
    }
