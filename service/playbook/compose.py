"""Composing one draft: placeholder values, the template, the litmus test, the message.

The outcome is one of three: ``ready`` (a message to append to Drafts),
``error`` (a template or a value is missing; the reason is recorded) or
``blocked`` (the classifier flagged our own text). Nothing half-made leaves here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from classifiers.interface import Thresholds
from service.errors import TemplateError
from service.mail.message import ParsedMessage
from service.playbook.docs_index import DocsIndex
from service.playbook.drafts import Reply, as_bytes, build_reply, new_message_id, reply_references, reply_subject
from service.playbook.litmus import LitmusResult, Score, litmus
from service.playbook.templates import TemplateRenderer, direction_of
from service.settings import MailboxSettings, PlaybookSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Composed:
    state: str  # ready, error or blocked
    template: str
    language: str
    reply: Reply | None = None
    raw: bytes | None = None
    error: str | None = None
    litmus: LitmusResult | None = None
    note: dict[str, Any] = field(default_factory=dict)


def support_address(mailbox: MailboxSettings) -> str:
    """Where drafts come from: the mailbox's ``address``, else its username when that is an address."""
    if mailbox.address:
        return mailbox.address
    return mailbox.username if "@" in mailbox.username else ""


def customer_name(parsed: ParsedMessage) -> str:
    name = " ".join(parsed.sender_name.split())
    # A display name that is just the address again greets nobody.
    return "" if "@" in name or len(name) > 80 else name


class Composer:
    def __init__(
        self,
        settings: PlaybookSettings,
        renderer: TemplateRenderer,
        *,
        score: Score,
        thresholds: Callable[[], Thresholds],
        labels: Sequence[str],
        docs: Callable[[], DocsIndex | None],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.score = score
        self.thresholds = thresholds
        self.labels = labels
        self.docs = docs
        self.clock = clock

    def text_value(self, name: str, language: str) -> str:
        localized = self.settings.localized.get(language, {})
        value = localized.get(name)  # type: ignore[call-overload]
        return value if value else str(getattr(self.settings, name))

    def values(self, template: str, language: str, parsed: ParsedMessage, earlier_words: Sequence[str],
               note: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: self.text_value(name, language)
            for name in ("company", "agent_name", "refund_terms", "alternatives")
        }
        values["customer_name"] = customer_name(parsed)
        values["earlier_words"] = list(earlier_words) or None
        if self.settings.hosted_service:
            deadline = self.clock() + timedelta(days=self.settings.data_export_days)
            values["data_export_deadline"] = deadline.date().isoformat()
        if template.endswith("_will"):
            values["docs_link"] = self._docs_link(parsed, language, note)
        return values

    def _docs_link(self, parsed: ParsedMessage, language: str, note: dict[str, Any]) -> str:
        index = self.docs()
        if index is not None:
            found = index.best(parsed.text)
            if found is not None:
                page, similarity = found
                note["docs_page"] = {"url": page.url, "title": page.title, "similarity": round(similarity, 4)}
                return page.url
        return self.text_value("docs_url", language)

    def compose(self, template: str, parsed: ParsedMessage, mailbox: MailboxSettings, *,
                earlier_words: Sequence[str] = ()) -> Composed:
        note: dict[str, Any] = {}
        try:
            language = self.renderer.language_for(template, parsed.language)
        except TemplateError as exc:
            return Composed("error", template, self.settings.default_language, error=str(exc), note=note)
        from_address = support_address(mailbox)
        if not from_address:
            error = f"no support address: set mailboxes[{mailbox.name}].address"
            return Composed("error", template, language, error=error, note=note)
        try:
            values = self.values(template, language, parsed, earlier_words, note)
            rendered = self.renderer.render(template, language, values)
        except TemplateError as exc:
            return Composed("error", template, language, error=str(exc), note=note)
        result = litmus(rendered.text, language, score=self.score, thresholds=self.thresholds(), labels=self.labels)
        if not result.passed:
            return Composed("blocked", template, language, litmus=result, note=note,
                            error=f"litmus test: the classifier flagged the draft as {', '.join(result.fired)}")
        reply = Reply(
            from_address=from_address,
            from_name=self.text_value("from_name", language) or self.text_value("company", language),
            to_address=parsed.sender,
            to_name=customer_name(parsed),
            subject=reply_subject(parsed.subject),
            language=language,
            direction=direction_of(language),
            text=rendered.text,
            message_id=new_message_id(from_address),
            in_reply_to=parsed.message_id,
            references=reply_references(parsed.message_id, parsed.in_reply_to, parsed.references),
        )
        return Composed("ready", template, language, reply=reply, raw=as_bytes(build_reply(reply, date=self.clock())),
                        litmus=result, note=note)


__all__ = ["Composed", "Composer", "customer_name", "support_address"]
