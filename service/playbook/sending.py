"""Approval and rejection: the only way a reply leaves WarningShot, and only by a person's hand.

approve: ``ready``/``appended``/``send_failed``/``dry_run`` → ``sending`` (an
atomic state change, so two approvals of one draft cannot both send) →
``sent``, or ``send_failed`` with the error (the draft and its copy in Drafts
stay; it can be approved again). After sending, a copy is filed in Sent and
the draft removed from Drafts; a failure there is recorded on the draft but
does not undo the sending. Under dry_run the draft becomes ``dry_run`` and
nothing is sent.

A draft left in ``sending`` by a crash during SMTP is not sent again
automatically (it may have been delivered); an admin checks and rejects it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from service.errors import DraftBlockedError, DraftStateError, MailboxError, PlaybookError, SendError
from service.mailbox.base import FolderSession
from service.playbook.compose import support_address
from service.playbook.drafts import Reply, as_bytes, build_reply
from service.playbook.litmus import litmus
from service.settings import MailboxSettings
from service.store.playbook_tables import CounselForward, Draft

if TYPE_CHECKING:
    from service.playbook.engine import Playbook

log = logging.getLogger(__name__)

APPROVABLE = ("ready", "appended", "send_failed", "dry_run")
REJECTABLE = ("ready", "appended", "send_failed", "dry_run", "error", "blocked")
_MAX_TEXT = 100_000


def _clean(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    return "\n".join(line.rstrip() for line in lines) + "\n"


class Approvals:
    def __init__(self, playbook: Playbook, *, opener: Callable[[MailboxSettings, str], FolderSession]) -> None:
        self.playbook = playbook
        self.repo = playbook.repo
        self.opener = opener

    def approve(self, draft_id: int, *, actor: str, edited_text: str | None = None) -> Draft:
        draft = self.repo.get_draft(draft_id)
        if draft.state not in APPROVABLE:
            raise DraftStateError(f"draft {draft_id} is {draft.state!r} and cannot be approved")
        self.playbook.mailbox(draft.mailbox)  # before sending: filing it needs the mailbox
        assert draft.text is not None and draft.message_id and draft.from_address
        text, edited = draft.text, draft.edited
        if edited_text is not None and _clean(edited_text) != _clean(draft.text):
            if not edited_text.strip() or len(edited_text) > _MAX_TEXT:
                raise DraftStateError("the edited text is empty or too long")
            text, edited = _clean(edited_text), True
            pb = self.playbook
            result = litmus(text, draft.language, score=pb.composer.score, thresholds=pb.composer.thresholds(),
                            labels=pb.composer.labels)
            if not result.passed:
                self.repo.add_event(draft.sender_id, "edit_blocked", draft_id=draft.id, actor=actor,
                                    detail={"labels": list(result.fired)})
                log.warning("draft #%d: edited text flagged as %s; not sent", draft.id, ",".join(result.fired))
                raise DraftBlockedError(
                    f"the edited text was flagged as {', '.join(result.fired)}; rephrase it", result.fired
                )
        now = self.playbook.clock()
        draft = self.repo.update_draft(draft.id, expect=APPROVABLE, state="sending", approved_by=actor,
                                       approved_at=now, text=text, edited=edited, error=None)
        reply = Reply(
            from_address=draft.from_address or "", from_name=draft.from_name or "", to_address=draft.to_address,
            to_name=draft.to_name or "", subject=draft.subject or "Re:", language=draft.language,
            direction=draft.direction, text=text, message_id=draft.message_id or "",
            in_reply_to=draft.in_reply_to, references=tuple(draft.references or ()),
        )
        data = as_bytes(build_reply(reply, date=now))
        if self.playbook.dry_run:
            self.repo.add_event(draft.sender_id, "draft_approved", draft_id=draft.id, actor=actor,
                                detail={"dry_run": True, "edited": edited})
            log.info("draft #%d approved by %s; dry_run: not sent", draft.id, actor)
            return self.repo.update_draft(draft.id, state="dry_run")
        try:
            delivery = self.playbook.smtp.send(reply.from_address, [reply.to_address], data)
        except SendError as exc:
            self.repo.add_event(draft.sender_id, "send_failed", draft_id=draft.id, actor=actor,
                                detail={"error": str(exc)})
            log.error("draft #%d: sending failed: %s", draft.id, exc)
            self.repo.update_draft(draft.id, state="send_failed", error=str(exc),
                                   send_attempts=draft.send_attempts + exc.attempts)
            raise
        draft = self.repo.update_draft(draft.id, state="sent", sent_at=self.playbook.clock(), raw=data,
                                       send_attempts=draft.send_attempts + delivery.attempts)
        self.repo.add_event(draft.sender_id, "draft_sent", draft_id=draft.id, actor=actor,
                            detail={"template": draft.template, "edited": edited})
        log.info("draft #%d approved by %s and sent", draft.id, actor)
        problem = self._file_sent(draft, data)
        if problem:
            draft = self.repo.update_draft(draft.id, error=problem)
        return draft

    def _file_sent(self, draft: Draft, data: bytes) -> str | None:
        """Copy to Sent, remove from Drafts; returns what went wrong, if anything."""
        mailbox = self.playbook.mailbox(draft.mailbox)
        assert draft.message_id
        try:
            session = self.opener(mailbox, "INBOX")
            try:
                if mailbox.sent_folder and not session.has_message_id(mailbox.sent_folder, draft.message_id):
                    session.append(mailbox.sent_folder, data, ("\\Seen",))
                session.delete_message_id(mailbox.drafts_folder, draft.message_id)
            finally:
                session.close()
        except MailboxError as exc:
            log.warning("draft #%d: sent, but filing it failed: %s", draft.id, exc)
            return f"sent, but filing in {mailbox.sent_folder or 'Sent'} / removing from Drafts failed: {exc}"
        return None

    def reject(self, draft_id: int, *, actor: str, reason: str) -> Draft:
        before = self.repo.get_draft(draft_id)
        draft = self.repo.update_draft(draft_id, expect=REJECTABLE, state="rejected", rejected_by=actor,
                                       rejected_at=self.playbook.clock(), reject_reason=reason)
        self.repo.add_event(draft.sender_id, "draft_rejected", draft_id=draft.id, actor=actor,
                            detail={"reason": reason})
        log.info("draft #%d rejected by %s", draft.id, actor)
        if before.state in ("appended", "send_failed") and draft.message_id and not self.playbook.dry_run:
            mailbox = self.playbook.mailbox(draft.mailbox)
            try:
                session = self.opener(mailbox, "INBOX")
                try:
                    session.delete_message_id(mailbox.drafts_folder, draft.message_id)
                finally:
                    session.close()
            except MailboxError as exc:
                log.warning("draft #%d: rejected, but removing it from Drafts failed: %s", draft.id, exc)
                draft = self.repo.update_draft(draft.id, error=f"rejected, but removing it from Drafts failed: {exc}")
        return draft

    def retry_forward(self, forward_id: int) -> CounselForward:
        forward = self.repo.get_forward(forward_id)
        if forward is None:
            raise PlaybookError(f"no counsel forward {forward_id}")
        if forward.state != "send_failed" or forward.raw is None:
            raise DraftStateError(f"counsel forward {forward_id} is {forward.state!r}; only failed ones are retried")
        if self.playbook.dry_run:
            return forward
        mailbox = self.playbook.mailbox(forward.mailbox)
        sender = support_address(mailbox) or forward.address
        common = {"sender_id": forward.sender_id, "address": forward.address, "message_id": forward.message_id}
        result = self.playbook.send_forward(forward.mailbox, forward.message_key, sender, forward.raw, common,
                                            attempts=forward.attempts)
        if result.state != "sent":
            raise SendError(result.error or "forward failed")
        return result


__all__ = ["APPROVABLE", "REJECTABLE", "Approvals"]
