"""The playbook's queries on the store: senders, plans, drafts, counsel forwards.

Each public method is one short transaction (``Store.session``), like the
Store's own; SQLAlchemy errors arrive as StoreError from there. Rows come back
detached and fully loaded, so callers may read them after the session ends.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from service.errors import DraftStateError, UnknownDraftError, UnknownSenderError
from service.playbook.decide import PlaybookDecision
from service.playbook.senders import SenderState
from service.playbook.will import is_will_candidate, window_start
from service.settings import WillSettings
from service.store import Store
from service.store.playbook_tables import CounselForward, Draft, Sender, SenderEvent, SenderMessage
from service.store.tables import utcnow

Decider = Callable[[Sequence[str], SenderState, bool], PlaybookDecision]


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SenderHistory:
    """Everything recorded about one sender, oldest first."""

    sender: Sender
    messages: list[SenderMessage]
    events: list[SenderEvent]
    drafts: list[Draft]


class PlaybookRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- senders -----------------------------------------------------------

    def sender(self, address: str) -> Sender | None:
        with self.store.session() as s:
            return s.scalars(select(Sender).filter_by(address=address)).first()

    def sender_by_id(self, sender_id: int) -> Sender:
        with self.store.session() as s:
            return s.get_one(Sender, sender_id)

    def history(self, address: str) -> SenderHistory:
        with self.store.session() as s:
            sender = s.scalars(select(Sender).filter_by(address=address)).first()
            if sender is None:
                raise UnknownSenderError(f"no sender {address!r}")
            return SenderHistory(
                sender,
                list(s.scalars(select(SenderMessage).filter_by(sender_id=sender.id).order_by(SenderMessage.id))),
                list(s.scalars(select(SenderEvent).filter_by(sender_id=sender.id).order_by(SenderEvent.id))),
                list(s.scalars(select(Draft).filter_by(sender_id=sender.id).order_by(Draft.id))),
            )

    def reset_sender(self, address: str, *, actor: str, reason: str = "") -> Sender:
        now = utcnow()
        with self.store.session() as s:
            sender = s.scalars(select(Sender).filter_by(address=address)).first()
            if sender is None:
                raise UnknownSenderError(f"no sender {address!r}")
            before = {"state": sender.state, "warned_type": sender.warned_type, "will_candidate": sender.will_candidate}
            sender.state, sender.warned_type, sender.will_candidate = "clear", None, False
            sender.state_changed_at = sender.reset_at = now
            detail = {"before": before, "reason": reason}
            s.add(SenderEvent(sender_id=sender.id, kind="reset", actor=actor, detail=detail))
            return sender

    def add_event(self, sender_id: int, kind: str, *, message_key: str | None = None, draft_id: int | None = None,
                  actor: str | None = None, detail: dict[str, Any] | None = None) -> None:
        with self.store.session() as s:
            s.add(SenderEvent(sender_id=sender_id, kind=kind, message_key=message_key, draft_id=draft_id,
                              actor=actor, detail=detail))

    def earlier_evidence(self, sender_id: int, labels: Collection[str], *, limit: int = 2) -> list[str]:
        """The evidence sentences of the sender's flagged messages, most recent last."""
        with self.store.session() as s:
            rows = s.scalars(
                select(SenderMessage).filter_by(sender_id=sender_id).where(SenderMessage.evidence.is_not(None))
                .order_by(SenderMessage.id.desc()).limit(20)
            )
            found: list[str] = []
            for row in rows:
                for label, sentence in (row.evidence or {}).items():
                    line = " ".join((sentence or "").split())
                    if label in labels and line and line not in found:
                        found.append(line)
            return list(reversed(found[:limit]))

    def summary(self, sender_id: int) -> dict[str, int]:
        """Counts for the internal note: messages, flagged messages, drafts, warnings."""
        with self.store.session() as s:
            messages = s.scalars(select(SenderMessage.labels).filter_by(sender_id=sender_id)).all()
            drafts = s.scalar(select(func.count()).select_from(Draft).filter_by(sender_id=sender_id)) or 0
            warnings = s.scalar(
                select(func.count()).select_from(SenderEvent).filter_by(sender_id=sender_id, kind="warned")
            ) or 0
            return {"messages": len(messages), "flagged": sum(1 for labels in messages if labels),
                    "drafts": drafts, "warnings": warnings}

    def sender_message(self, mailbox: str, key: str) -> SenderMessage | None:
        with self.store.session() as s:
            return s.scalars(select(SenderMessage).filter_by(mailbox=mailbox, message_key=key)).first()

    # -- the plan of one message ----------------------------------------------

    def planned(self, mailbox: str, key: str) -> dict[str, Any] | None:
        with self.store.session() as s:
            row = s.scalars(select(SenderMessage).filter_by(mailbox=mailbox, message_key=key)).first()
            return dict(row.plan) if row is not None else None

    def record_plan(
        self,
        *,
        mailbox: str,
        key: str,
        record_id: int | None,
        address: str,
        display_name: str,
        message_id: str | None,
        refs: Sequence[str],
        labels: Sequence[str],
        scores: dict[str, float] | None,
        evidence: dict[str, str] | None,
        will: WillSettings,
        decide: Decider,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Record the message, decide, and move the sender on the ladder: all in one transaction.

        A second call for the same message returns the first plan unchanged,
        which is what makes a replay after a crash safe.
        """
        now = now or utcnow()
        with self.store.session() as s:
            existing = s.scalars(select(SenderMessage).filter_by(mailbox=mailbox, message_key=key)).first()
            if existing is not None:
                return dict(existing.plan)
            sender = s.scalars(select(Sender).filter_by(address=address)).first()
            if sender is None:
                sender = Sender(address=address, display_name=display_name or None, state="clear",
                                will_candidate=False, state_changed_at=now)
                s.add(sender)
                s.flush()
            elif display_name:
                sender.display_name = display_name
            opens = not self._known(s, refs)
            row = SenderMessage(
                sender_id=sender.id, mailbox=mailbox, message_key=key, message_id=message_id, record_id=record_id,
                opens_conversation=opens, labels=list(labels), scores=scores,
                evidence={k: v for k, v in (evidence or {}).items() if v} or None, plan={}, received_at=now,
            )
            s.add(row)
            s.flush()
            conversations = self._conversations(s, sender, will, now) if opens else 0
            candidate = is_will_candidate(opens, conversations, will)
            before = SenderState(sender.state, sender.warned_type)  # type: ignore[arg-type]
            decision = decide(labels, before, candidate)
            if decision.after != before:
                sender.state, sender.warned_type = decision.after.state, decision.after.warned_type
                sender.state_changed_at = now
            if candidate:
                sender.will_candidate = True
            plan = {
                **decision.as_record(),
                "sender_id": sender.id,
                "sender": address,
                "opens_conversation": opens,
                "conversations": conversations,
            }
            row.plan = plan
            for kind, detail in self._events(decision, labels, conversations):
                s.add(SenderEvent(sender_id=sender.id, kind=kind, message_key=key, detail=detail))
            return plan

    @staticmethod
    def _known(s: Session, refs: Sequence[str]) -> bool:
        if not refs:
            return False
        refs = list(refs)
        hit = s.scalars(select(SenderMessage.id).where(SenderMessage.message_id.in_(refs)).limit(1)).first()
        if hit is None:
            hit = s.scalars(select(Draft.id).where(Draft.message_id.in_(refs)).limit(1)).first()
        return hit is not None

    @staticmethod
    def _conversations(s: Session, sender: Sender, will: WillSettings, now: datetime) -> int:
        warned_for_will = sender.state == "warned" and sender.warned_type == "will"
        since = window_start(
            now, will, reset_at=aware(sender.reset_at),
            will_warned_at=aware(sender.state_changed_at) if warned_for_will else None,
        )
        return s.scalar(
            select(func.count()).select_from(SenderMessage)
            .filter_by(sender_id=sender.id, opens_conversation=True)
            .where(SenderMessage.received_at >= since)
        ) or 0

    @staticmethod
    def _events(
        decision: PlaybookDecision, labels: Sequence[str], conversations: int
    ) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        if labels:
            events.append(("flagged", {"labels": list(labels)}))
        if decision.will_candidate:
            events.append(("will_candidate", {"conversations": conversations}))
        kind = {
            "first_offence": "warned", "offence_after_warning": "terminated", "legal_threat": "legal",
            "legal_sender": "routed", "after_termination": "offence_after_termination",
        }.get(decision.path)
        if kind:
            events.append((kind, {"offence": decision.offence, "template": decision.template}))
        return events

    # -- drafts ----------------------------------------------------------------

    def draft_for(self, mailbox: str, key: str) -> Draft | None:
        with self.store.session() as s:
            return s.scalars(select(Draft).filter_by(mailbox=mailbox, source_key=key)).first()

    def add_draft(self, **fields: Any) -> tuple[Draft, bool]:
        """Insert the draft of a message; if one exists already, that one is returned (and False)."""
        with self.store.session() as s:
            query = select(Draft).filter_by(mailbox=fields["mailbox"], source_key=fields["source_key"])
            existing = s.scalars(query).first()
            if existing is not None:
                return existing, False
            draft = Draft(**fields)
            s.add(draft)
            s.flush()
            return draft, True

    def get_draft(self, draft_id: int) -> Draft:
        with self.store.session() as s:
            draft = s.get(Draft, draft_id)
            if draft is None:
                raise UnknownDraftError(f"no draft {draft_id}")
            return draft

    def drafts(self, *, state: str | None = None, mailbox: str | None = None, limit: int = 100,
               offset: int = 0) -> list[Draft]:
        with self.store.session() as s:
            query = select(Draft).order_by(Draft.id.desc()).limit(limit).offset(offset)
            if state:
                query = query.filter_by(state=state)
            if mailbox:
                query = query.filter_by(mailbox=mailbox)
            return list(s.scalars(query))

    def update_draft(self, draft_id: int, *, expect: Collection[str] | None = None, **fields: Any) -> Draft:
        """Change a draft; with ``expect``, only if its state is one of them (checked atomically)."""
        with self.store.session() as s:
            statement = update(Draft).where(Draft.id == draft_id)
            if expect is not None:
                statement = statement.where(Draft.state.in_(list(expect)))
            result = cast(CursorResult[Any], s.execute(statement.values(**fields, updated_at=utcnow())))
            changed = result.rowcount
            draft = s.get(Draft, draft_id, populate_existing=True)
            if draft is None:
                raise UnknownDraftError(f"no draft {draft_id}")
            if not changed:
                raise DraftStateError(f"draft {draft_id} is {draft.state!r}; expected one of {sorted(expect or ())}")
            return draft

    # -- counsel forwards ------------------------------------------------------

    def forward_for(self, mailbox: str, key: str) -> CounselForward | None:
        with self.store.session() as s:
            return s.scalars(select(CounselForward).filter_by(mailbox=mailbox, message_key=key)).first()

    def get_forward(self, forward_id: int) -> CounselForward | None:
        with self.store.session() as s:
            return s.get(CounselForward, forward_id)

    def save_forward(self, *, mailbox: str, key: str, **fields: Any) -> CounselForward:
        with self.store.session() as s:
            row = s.scalars(select(CounselForward).filter_by(mailbox=mailbox, message_key=key)).first()
            if row is None:
                row = CounselForward(mailbox=mailbox, message_key=key, **fields)
                s.add(row)
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
            s.flush()
            return row

    def failed_forwards(self) -> list[CounselForward]:
        with self.store.session() as s:
            return list(s.scalars(select(CounselForward).filter_by(state="send_failed").order_by(CounselForward.id)))


__all__ = ["PlaybookRepository", "SenderHistory", "aware"]
