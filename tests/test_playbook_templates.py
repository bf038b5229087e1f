"""Templates (every shipped language and type), the reply and forward messages, composing a draft."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from marker_classifier import MarkerClassifier

from service.errors import TemplateError
from service.mail.parse import parse_message
from service.playbook.compose import Composer
from service.playbook.decide import TEMPLATES
from service.playbook.drafts import (
    Reply,
    as_bytes,
    build_forward,
    build_reply,
    new_message_id,
    reply_references,
    reply_subject,
)
from service.playbook.templates import SHIPPED_DIR, TemplateRenderer, base_language, direction_of
from service.settings import MailboxSettings, PlaybookSettings

LANGUAGES = ("ar", "de", "en", "es", "fr", "he")
VALUES = {
    "customer_name": "Sam Lee",
    "agent_name": "Dana Agent",
    "company": "Acme Plugins",
    "refund_terms": "REFUND-TERMS-SENTENCE.",
    "docs_link": "https://docs.example.com/currency.html",
    "data_export_deadline": "2026-12-23",
    "earlier_words": ["EARLIER-WORDS-ONE", "EARLIER-WORDS-TWO"],
    "alternatives": "ALTERNATIVES-LIST",
}
# A word of each language's greeting, so a file in the wrong folder shows.
GREETING = {"ar": "مرحباً", "de": "Guten Tag", "en": "Hello", "es": "Hola", "fr": "Bonjour", "he": "שלום"}


def test_every_language_ships_every_template():
    renderer = TemplateRenderer()
    assert set(LANGUAGES) <= set(renderer.languages())
    for language in LANGUAGES:
        for name in TEMPLATES:
            assert (SHIPPED_DIR / language / f"{name}.txt").is_file(), f"{language}/{name}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_every_shipped_template_renders_with_every_placeholder(language, name):
    text = TemplateRenderer().render(name, language, VALUES).text
    assert "{{" not in text and "{%" not in text and "\n\n\n" not in text
    assert text.startswith(f"{GREETING[language]} Sam Lee") or text.startswith(f"{GREETING[language]}, Sam Lee")
    assert text.rstrip().endswith("Dana Agent\nAcme Plugins")
    if name.startswith("termination_"):
        assert "REFUND-TERMS-SENTENCE." in text and "2026-12-23" in text
    if name == "termination_abusive":
        assert "> EARLIER-WORDS-ONE\n> EARLIER-WORDS-TWO" in text
    if name == "termination_will":
        assert "ALTERNATIVES-LIST" in text
    if name.endswith("_will") and name.startswith("warning"):
        assert "\nhttps://docs.example.com/currency.html\n" in text  # on a line of its own: safe in RTL
    if language in ("ar", "he"):
        # Our own sentences are written in the language, not left in English.
        own = [line for line in text.splitlines() if line and not line.startswith(">") and "Acme" not in line
               and "Dana" not in line and "REFUND" not in line and "http" not in line]
        assert all(any("\u0590" <= ch <= "\u06ff" for ch in line) for line in own), own


@pytest.mark.parametrize("language", LANGUAGES)
def test_optional_placeholders_may_be_missing(language):
    required = {k: VALUES[k] for k in ("agent_name", "company", "refund_terms", "docs_link")}
    for name in TEMPLATES:
        text = TemplateRenderer().render(name, language, required).text
        assert "Sam Lee" not in text and "EARLIER-WORDS" not in text and "2026-12-23" not in text


@pytest.mark.parametrize(
    ("name", "missing"),
    [("warning_abusive", "company"), ("warning_extortion", "agent_name"), ("warning_will", "docs_link"),
     ("termination_extortion", "refund_terms"), ("termination_legal", "refund_terms")],
)
def test_a_missing_placeholder_is_an_error_not_a_half_filled_mail(name, missing):
    values = {**VALUES, missing: ""}
    with pytest.raises(TemplateError, match=missing):
        TemplateRenderer().render(name, "en", values)


def test_an_admin_override_wins_and_languages_fall_back(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "warning_abusive.txt").write_text("Custom for {{ company }}.\n", encoding="utf-8")
    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "warning_abusive.txt").write_text("Olá {{ company }}.\n", encoding="utf-8")
    renderer = TemplateRenderer(tmp_path, default_language="en")
    assert renderer.render("warning_abusive", "en", VALUES).text == "Custom for Acme Plugins.\n"
    assert renderer.language_for("warning_abusive", "pt-BR") == "pt"
    assert renderer.language_for("warning_extortion", "pt") == "en"  # no pt template: the default
    assert renderer.language_for("warning_abusive", "ja") == "en"
    assert renderer.language_for("warning_abusive", "und") == "en"
    assert renderer.language_for("termination_legal", "he") == "he"
    assert TemplateRenderer(default_language="fr").language_for("warning_will", None) == "fr"
    with pytest.raises(TemplateError):
        TemplateRenderer(tmp_path, default_language="xx").language_for("warning_will", "ja")


def test_templates_are_sandboxed_and_broken_ones_are_reported(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "warning_abusive.txt").write_text("{{ company.__class__.__mro__ }}\n", encoding="utf-8")
    (tmp_path / "en" / "warning_extortion.txt").write_text("{% if %}\n", encoding="utf-8")
    renderer = TemplateRenderer(tmp_path)
    with pytest.raises(TemplateError, match="unsafe|SecurityError"):
        renderer.render("warning_abusive", "en", VALUES)
    with pytest.raises(TemplateError, match="line 1"):
        renderer.render("warning_extortion", "en", VALUES)


def test_language_codes_and_directions():
    assert [base_language(c) for c in ("pt-BR", "he_IL", "und", "", None, "EN")] == ["pt", "he", "", "", "", "en"]
    assert [direction_of(c) for c in ("ar", "he", "fa", "en", "de")] == ["rtl", "rtl", "rtl", "ltr", "ltr"]


# -- the messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [("Shipping rates", "Re: Shipping rates"), ("Re: Shipping rates", "Re: Shipping rates"),
     ("RE: Re: re : AW: Sv: Shipping", "Re: Shipping"), ("Re[3]: x", "Re: x"), ("רב: רד", "Re: רב: רד"),
     ("رد: مشكلة", "Re: مشكلة"), ("Fwd: invoice", "Re: Fwd: invoice"), ("", "Re:"), ("  a\r\n  b ", "Re: a b")],
)
def test_reply_subjects_never_stack_prefixes(original, expected):
    assert reply_subject(original) == expected


def test_reply_references_follow_rfc_5322():
    assert reply_references("<c@x>", "<b@x>", ("<a@x>", "<b@x>")) == ("<a@x>", "<b@x>", "<c@x>")
    assert reply_references("<c@x>", "<b@x>", ()) == ("<b@x>", "<c@x>")
    assert reply_references(None, None, ()) == ()
    long = reply_references("<z@x>", None, tuple(f"<{n}@x>" for n in range(50)))
    assert len(long) == 20 and long[0] == "<0@x>" and long[-1] == "<z@x>"


def _reply(language: str, direction: str, text: str) -> Reply:
    return Reply("support@acme.example", "Acme Plugins", "sam@example.org", "Sam Lee", "Re: Hi", language, direction,
                 text, new_message_id("support@acme.example"), "<q@example.org>",
                 ("<p@example.org>", "<q@example.org>"))


def test_a_left_to_right_reply_is_plain_utf8_with_every_header():
    date = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    raw = as_bytes(build_reply(_reply("fr", "ltr", "Bonjour,\n\nC'est réglé.\n"), date=date))
    assert b"\r\n" in raw and raw.isascii()
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg["From"] == "Acme Plugins <support@acme.example>" and msg["To"] == "Sam Lee <sam@example.org>"
    assert msg["In-Reply-To"] == "<q@example.org>" and msg["References"] == "<p@example.org> <q@example.org>"
    assert msg["Content-Language"] == "fr" and msg["Date"] == "Mon, 23 Nov 2026 12:00:00 +0000"
    assert msg["Message-ID"].endswith("@acme.example>")
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg.get_content().replace("\r\n", "\n") == "Bonjour,\n\nC'est réglé.\n"


def test_a_right_to_left_reply_has_an_html_alternative_marked_rtl():
    text = "مرحباً Sam،\n\nنشكركم على رسالتكم.\n\n> quoted <b>words</b>\n"
    msg = BytesParser(policy=policy.default).parsebytes(as_bytes(build_reply(_reply("ar", "rtl", text))))
    assert msg.get_content_type() == "multipart/alternative" and msg["Content-Language"] == "ar"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    html = msg.get_body(("html",)).get_content()
    assert '<html lang="ar" dir="rtl">' in html and '<body dir="rtl"' in html
    assert "<blockquote" in html and "&lt;b&gt;words&lt;/b&gt;" in html
    assert new_message_id("a@b.example") != new_message_id("a@b.example")


def test_the_forward_to_counsel_carries_the_original_byte_for_byte():
    original = (b"From: x@example.org\r\nSubject: =?utf-8?q?Klage?=\r\nMessage-ID: <o@example.org>\r\n"
                b"Content-Type: text/plain; charset=windows-1255\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                ) + "שלום".encode("cp1255") + b"\r\n"
    data = build_forward(original, from_address="support@acme.example", to_address="counsel@law.example",
                         subject="Klage", note="For counsel.\n", message_id="<f@acme.example>")
    assert original in data
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert msg["Subject"] == "Fwd: Klage" and msg["To"] == "counsel@law.example"
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "message/rfc822"
    assert attachment.get_content()["Message-ID"] == "<o@example.org>"


# -- composing a draft ---------------------------------------------------------------------


def _composer(settings: PlaybookSettings, tmp_path: Path | None = None) -> Composer:
    classifier = MarkerClassifier()
    return Composer(settings, TemplateRenderer(tmp_path, settings.default_language), score=classifier.predict,
                    thresholds=lambda: classifier.thresholds, labels=classifier.labels, docs=lambda: None,
                    clock=lambda: datetime(2026, 11, 23, tzinfo=UTC))


MAILBOX = MailboxSettings(name="support", host="localhost", security="plain", username="support",
                          password="pw-for-tests", address="support@acme.example")
SETTINGS = PlaybookSettings(company="Acme Plugins", agent_name="Dana", refund_terms="Refund in 5 days.",
                            hosted_service=True, data_export_days=30,
                            localized={"de": {"refund_terms": "Erstattung binnen 5 Tagen."}})


def _parsed(body: str, sender: str = "Sam Lee <sam@example.org>"):  # type: ignore[no-untyped-def]
    raw = (f"From: {sender}\r\nTo: support@acme.example\r\nSubject: Frage\r\nMessage-ID: <m1@example.org>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()
    return parse_message(raw)


def test_composing_uses_the_message_language_and_localized_values():
    parsed = _parsed("Guten Tag, die Rechnung für März wurde doppelt abgebucht. Bitte um Erstattung.")
    composed = _composer(SETTINGS).compose("termination_extortion", parsed, MAILBOX)
    assert composed.state == "ready" and composed.language == "de" and composed.reply is not None
    assert "Erstattung binnen 5 Tagen." in composed.reply.text and "2026-12-23" in composed.reply.text
    assert composed.reply.to_address == "sam@example.org" and composed.reply.subject == "Re: Frage"
    assert composed.reply.in_reply_to == "<m1@example.org>" and composed.raw is not None


def test_composing_records_an_error_for_a_missing_value_or_address():
    parsed = _parsed("Hello, the shipping rates in my shop are wrong again since the update.")
    composed = _composer(SETTINGS.model_copy(update={"agent_name": ""})).compose("warning_abusive", parsed, MAILBOX)
    assert composed.state == "error" and "agent_name" in (composed.error or "") and composed.raw is None
    no_address = MAILBOX.model_copy(update={"address": ""})
    composed = _composer(SETTINGS).compose("warning_abusive", parsed, no_address)
    assert composed.state == "error" and "address" in (composed.error or "")


def test_composing_blocks_a_draft_the_classifier_flags(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "warning_abusive.txt").write_text("Hello,\n\nYou [[extortion]] again.\n", encoding="utf-8")
    parsed = _parsed("Hello, the shipping rates in my shop are wrong again since the update.")
    composed = _composer(SETTINGS, tmp_path).compose("warning_abusive", parsed, MAILBOX)
    assert composed.state == "blocked" and composed.raw is None and composed.reply is None
    assert composed.litmus is not None and composed.litmus.fired == ("extortion",)
    # Quoted lines are the customer's words, not ours: they do not fail the test.
    (tmp_path / "en" / "warning_extortion.txt").write_text("Hello,\n\n> you [[abusive]]\n\nDana\n", encoding="utf-8")
    assert _composer(SETTINGS, tmp_path).compose("warning_extortion", parsed, MAILBOX).state == "ready"
