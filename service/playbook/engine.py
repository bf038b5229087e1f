"""The playbook as the pipeline and the API see it.

The pipeline calls :meth:`Playbook.plan` once per message, before it stores
its decision (the plan and the sender's move on the ladder are one
transaction, keyed by the message), and :meth:`Playbook.apply` as one more
idempotent effect of that stored decision: the Will keyword, the counsel
copy and forward, the draft. A replay after a crash finds the plan, the
draft row and the draft's Message-ID in Drafts, and does nothing twice.

The API calls approve_draft, reject_draft, reset_sender and the read methods.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from classifiers.interface import LABELS, Thresholds
from service.errors import SendError, UnknownMailboxError
from service.mail.message import ParsedMessage
from service.mailbox.base import FolderSession
from service.mailbox.imap import open_folder
from service.playbook.compose import Composer, support_address
from service.playbook.decide import PlaybookDecision, decide_playbook
from service.playbook.docs_index import BaseModelEmbedder, DocsIndex, Embed
from service.playbook.drafts import build_forward
from service.playbook.litmus import Score
from service.playbook.repository import PlaybookRepository, SenderHistory
from service.playbook.senders import normalise_address
from service.playbook.sending import Approvals
from service.playbook.smtp import SmtpSender
from service.playbook.templates import TemplateRenderer
from service.playbook.will import message_refs
from service.settings import MailboxSettings, Settings
from service.store import Store
from service.store.db import Location
from service.store.playbook_tables import CounselForward, Draft, Sender
from service.store.tables import utcnow

log = logging.getLogger(__name__)

DRAFT_FLAGS = ("\\Draft", "\\Seen")
# Automatic senders get no reply drafted: there is no one to read it.
_MACHINE_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"})


class Playbook:
    """Sender history, escalation, drafts, counsel routing and approval, over one store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        score: Score,
        thresholds: Callable[[], Thresholds],
        opener: Callable[[MailboxSettings, str], FolderSession] = open_folder,
        embed: Embed | None = None,
        smtp: SmtpSender | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.config = settings.playbook
        self.dry_run = settings.daemon.dry_run
        self.repo = PlaybookRepository(store)
        self.clock = clock
        self.smtp = smtp or SmtpSender(settings.smtp)
        self._embed = embed
        self._docs: DocsIndex | None = None
        self._docs_lock = threading.Lock()
        self._plan_lock = threading.Lock()
        self.composer = Composer(
            self.config,
            TemplateRenderer(self.config.templates_dir, self.config.default_language),
            score=score, thresholds=thresholds, labels=LABELS, docs=self._docs_index, clock=clock,
        )
        self.approvals = Approvals(self, opener=opener)

    # -- helpers -----------------------------------------------------------------

    def mailbox(self, name: str) -> MailboxSettings:
        for mailbox in self.settings.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise UnknownMailboxError(f"no mailbox {name!r} in the settings")

    def normalise(self, address: str) -> str:
        return normalise_address(
            address, plus=self.config.normalise_plus, gmail_dots=self.config.normalise_gmail_dots,
            gmail_domains=self.config.gmail_domains,
        )

    def _docs_index(self) -> DocsIndex | None:
        will = self.config.will
        if will.docs_dir is None:
            return None
        with self._docs_lock:
            if self._docs is None:
                embed = self._embed or BaseModelEmbedder(self.settings.model.base_cache)
                self._docs = DocsIndex(will.docs_dir, will.docs_base_url, embed, extension=will.docs_extension)
            return self._docs

    # -- pipeline: decide once ---------------------------------------------------

    def plan(self, loc: Location, record_id: int | None, parsed: ParsedMessage, labels: tuple[str, ...] | list[str],
             scores: dict[str, float] | None, evidence: dict[str, str] | None) -> dict[str, Any] | None:
        """The playbook's decision for this message, made and stored once; None when it has no sender to act on."""
        if not self.config.enabled or not parsed.sender or "@" not in parsed.sender:
            return None
        address = self.normalise(parsed.sender)
        mailbox = self.mailbox(loc.mailbox)
        own = support_address(mailbox)
        if (own and address == self.normalise(own)) or address.partition("@")[0] in _MACHINE_LOCAL_PARTS:
            return None
        will = self.config.will

        def decide(found: Any, before: Any, candidate: bool) -> PlaybookDecision:
            return decide_playbook(found, before, will_candidate=candidate, will_drafts=will.drafts)

        with self._plan_lock:
            plan = self.repo.record_plan(
                mailbox=loc.mailbox, key=parsed.key, record_id=record_id, address=address,
                display_name=parsed.sender_name, message_id=parsed.message_id,
                refs=message_refs(parsed.in_reply_to, parsed.references), labels=list(labels),
                scores=scores, evidence=evidence, will=will, decide=decide, now=self.clock(),
            )
        if plan["path"] != "none":
            log.info("%s: sender #%s %s -> %s (%s)", loc.mailbox, plan["sender_id"], plan["state_before"],
                     plan["state_after"], plan["path"])
        return plan

    # -- pipeline: idempotent effects ----------------------------------------------

    @staticmethod
    def has_effects(plan: dict[str, Any]) -> bool:
        """Whether applying ``plan`` does anything (a tag, a route, a draft)."""
        return bool(plan.get("template") or plan.get("route_to_counsel") or plan.get("will_candidate"))

    def apply(self, session: FolderSession, loc: Location, plan: dict[str, Any], parsed: ParsedMessage,
              raw: bytes) -> None:
        """Apply a stored plan; every step is safe to repeat. Nothing on the server changes under dry_run."""
        decision = PlaybookDecision.from_record(plan)
        if decision.will_candidate and not self.dry_run:
            session.add_keywords([loc.uid], [self.config.will.keyword])
        if decision.route_to_counsel:
            self._route(session, loc, plan, parsed, raw)
        if decision.template:
            self._draft(session, loc, plan, decision.template, parsed)

    def _route(self, session: FolderSession, loc: Location, plan: dict[str, Any], parsed: ParsedMessage,
               raw: bytes) -> None:
        counsel = self.settings.counsel
        if not self.dry_run:
            session.add_keywords([loc.uid], [counsel.keyword])
            if counsel.folder:
                session.copy_to(loc.uid, counsel.folder, parsed.message_id)
        if counsel.address:
            self._forward(loc, plan, parsed, raw)

    def _forward(self, loc: Location, plan: dict[str, Any], parsed: ParsedMessage, raw: bytes) -> None:
        done = self.repo.forward_for(loc.mailbox, parsed.key)
        if done is not None and done.state in ("sent", "dry_run"):
            return
        counsel, mailbox = self.settings.counsel, self.mailbox(loc.mailbox)
        sender = support_address(mailbox) or counsel.address
        # Derived from the message, so a forward repeated after a crash has the
        # same Message-ID and counsel's mail system can fold the two.
        digest = hashlib.sha256(f"{loc.mailbox}\0{parsed.key}".encode()).hexdigest()[:32]
        message_id = f"<counsel.{digest}@{sender.rpartition('@')[2] or 'warningshot.invalid'}>"
        note = (
            "Forwarded by WarningShot: a message for legal counsel.\n\n"
            f"Mailbox: {loc.mailbox}\nFrom: {parsed.sender}\nDate: {parsed.date or 'unknown'}\n"
            f"Reason: {plan['path'].replace('_', ' ')}\nSender state: {plan['state_after']}\n\n"
            "The original message is attached unchanged.\n"
        )
        data = build_forward(raw, from_address=sender, to_address=counsel.address, subject=parsed.subject,
                             note=note, message_id=message_id, date=self.clock())
        common = {"sender_id": plan["sender_id"], "address": counsel.address, "message_id": message_id}
        if self.dry_run:
            self.repo.save_forward(mailbox=loc.mailbox, key=parsed.key, state="dry_run", **common)
            return
        self.send_forward(loc.mailbox, parsed.key, sender, data, common, attempts=done.attempts if done else 0)

    def send_forward(self, mailbox: str, key: str, sender: str, data: bytes, common: dict[str, Any],
                     *, attempts: int = 0) -> CounselForward:
        try:
            delivery = self.smtp.send(sender, [common["address"]], data)
        except SendError as exc:
            # Routing must not quarantine a legal threat: the failure is
            # recorded, reported, and the forward can be retried.
            log.error("%s: forward to counsel failed: %s", mailbox, exc)
            return self.repo.save_forward(mailbox=mailbox, key=key, state="send_failed", error=str(exc),
                                          attempts=attempts + exc.attempts, raw=data, **common)
        log.info("%s: forwarded to counsel (forward of sender #%s)", mailbox, common["sender_id"])
        return self.repo.save_forward(mailbox=mailbox, key=key, state="sent", error=None,
                                      attempts=attempts + delivery.attempts, raw=None, **common)

    def _draft(self, session: FolderSession, loc: Location, plan: dict[str, Any], template: str,
               parsed: ParsedMessage) -> None:
        draft = self.repo.draft_for(loc.mailbox, parsed.key)
        if draft is None:
            draft = self._new_draft(loc, plan, template, parsed)
        if draft.state == "ready" and not self.dry_run:
            self._append(session, loc.mailbox, draft)

    def _new_draft(self, loc: Location, plan: dict[str, Any], template: str, parsed: ParsedMessage) -> Draft:
        mailbox = self.mailbox(loc.mailbox)
        earlier: list[str] = []
        if template == "termination_abusive":
            earlier = self.repo.earlier_evidence(plan["sender_id"], ("abusive", "extortion"))
        composed = self.composer.compose(template, parsed, mailbox, earlier_words=earlier)
        source = self.repo.sender_message(loc.mailbox, parsed.key)
        # Internal only: it goes into the store for the agent, never into the mail.
        note = {
            **composed.note,
            "path": plan["path"],
            "labels": source.labels if source else [],
            "scores": source.scores if source else None,
            "evidence": source.evidence if source else None,
            "sender": {
                "address": plan["sender"], "state_before": plan["state_before"], "state_after": plan["state_after"],
                "conversations_in_window": plan["conversations"], **self.repo.summary(plan["sender_id"]),
            },
        }
        reply = composed.reply
        fields: dict[str, Any] = {
            "sender_id": plan["sender_id"], "mailbox": loc.mailbox, "source_key": parsed.key,
            "source_message_id": parsed.message_id, "record_id": source.record_id if source else None,
            "template": template,
            "language": composed.language, "direction": reply.direction if reply else "ltr", "state": composed.state,
            "to_address": parsed.sender, "to_name": reply.to_name if reply else None,
            "subject": reply.subject if reply else None, "error": composed.error, "note": note,
            "litmus": composed.litmus.scores if composed.litmus else None, "references": [],
            "edited": False, "send_attempts": 0,
        }
        if reply is not None:
            fields.update(
                message_id=reply.message_id, from_address=reply.from_address, from_name=reply.from_name,
                in_reply_to=reply.in_reply_to, references=list(reply.references), text=reply.text, raw=composed.raw,
            )
        draft, created = self.repo.add_draft(**fields)
        if not created:  # another thread made it first
            return draft
        kind = {"ready": "draft_made", "error": "draft_error", "blocked": "draft_blocked"}[draft.state]
        self.repo.add_event(plan["sender_id"], kind, message_key=parsed.key, draft_id=draft.id,
                            detail={"template": template, "language": draft.language, "error": draft.error})
        # A flagged draft is a bug in a template; a missing value is a setting to fill in.
        level = {"ready": logging.INFO, "error": logging.WARNING}.get(draft.state, logging.ERROR)
        log.log(level, "%s: draft #%d (%s, %s): %s%s", loc.mailbox, draft.id, template, draft.language, draft.state,
                f": {draft.error}" if draft.error else "")
        return draft

    def _append(self, session: FolderSession, mailbox_name: str, draft: Draft) -> None:
        folder = self.mailbox(mailbox_name).drafts_folder
        assert draft.message_id and draft.raw
        # The store says "ready" also when a crash came between APPEND and the
        # update below; the Drafts folder then already holds the Message-ID.
        if not session.has_message_id(folder, draft.message_id):
            session.append(folder, draft.raw, DRAFT_FLAGS)
        self.repo.update_draft(draft.id, expect=("ready",), state="appended")
        log.info("%s: draft #%d is in %s", mailbox_name, draft.id, folder)

    # -- API -------------------------------------------------------------------------

    def approve_draft(self, draft_id: int, *, actor: str, edited_text: str | None = None) -> Draft:
        """Send the draft (SMTP), file it in Sent, remove it from Drafts, record who approved it."""
        return self.approvals.approve(draft_id, actor=actor, edited_text=edited_text)

    def reject_draft(self, draft_id: int, *, actor: str, reason: str) -> Draft:
        """Discard the draft (and its copy in Drafts), recording who and why."""
        return self.approvals.reject(draft_id, actor=actor, reason=reason)

    def retry_forward(self, forward_id: int) -> CounselForward:
        """Send a counsel forward again that failed before."""
        return self.approvals.retry_forward(forward_id)

    def reset_sender(self, address: str, *, actor: str, reason: str = "") -> Sender:
        """Put a sender back to ``clear`` (the address is normalised first)."""
        sender = self.repo.reset_sender(self.normalise(address), actor=actor, reason=reason)
        log.info("sender #%d reset by %s", sender.id, actor)
        return sender

    def sender_history(self, address: str) -> SenderHistory:
        return self.repo.history(self.normalise(address))

    def get_draft(self, draft_id: int) -> Draft:
        return self.repo.get_draft(draft_id)

    def drafts(self, *, state: str | None = None, mailbox: str | None = None, limit: int = 100,
               offset: int = 0) -> list[Draft]:
        return self.repo.drafts(state=state, mailbox=mailbox, limit=limit, offset=offset)


__all__ = ["DRAFT_FLAGS", "Playbook"]
