"""The playbook over a real store: plans, the ladder, Will detection, resets, the docs index, settings, SMTP."""

from __future__ import annotations

import re
import ssl
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from marker_classifier import MarkerClassifier

from service.errors import ConfigError, SendError, SendRefusedError, UnknownSenderError
from service.mail.parse import parse_message
from service.playbook.compose import Composer
from service.playbook.docs_index import BaseModelEmbedder, DocsIndex, read_page
from service.playbook.engine import Playbook
from service.playbook.smtp import SmtpSender
from service.playbook.templates import TemplateRenderer
from service.settings import Settings, SmtpSettings, load_settings
from service.store import Store
from service.store.db import Location

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def settings(tmp_path: Path, **playbook: object) -> Settings:
    return Settings(
        mailboxes=[{"name": "support", "host": "localhost", "security": "plain", "username": "support",
                    "password": "pw-for-tests", "address": "support@acme.example"}],
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        playbook={"company": "Acme", "agent_name": "Dana", "refund_terms": "Refund soon.", **playbook},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_playbook(config: Settings, clock: Clock, **kwargs: object) -> Playbook:
    store = Store(config.store.url)
    store.migrate()
    classifier = MarkerClassifier()
    return Playbook(config, store, score=classifier.predict, thresholds=lambda: classifier.thresholds,
                    clock=clock, **kwargs)  # type: ignore[arg-type]


_counter = iter(range(1, 10_000))


def message(sender: str = "Sam <sam@example.org>", body: str = "Where do I change the currency symbol?",
            in_reply_to: str | None = None, key: str | None = None):  # type: ignore[no-untyped-def]
    n = next(_counter)
    headers = f"From: {sender}\r\nSubject: Question {n}\r\nMessage-ID: <{key or f'm{n}'}@example.org>\r\n"
    if in_reply_to:
        headers += f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
    return parse_message((headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode())


def plan(pb: Playbook, parsed, labels=()):  # type: ignore[no-untyped-def]
    return pb.plan(Location("support", "INBOX", 1, 1), None, parsed, list(labels), None, {})


def test_the_plan_is_made_once_per_message_and_moves_the_sender_once(tmp_path, clock):
    pb = make_playbook(settings(tmp_path), clock)
    first = message(body="[[abusive]] clowns", key="same")
    plan_a = plan(pb, first, ["abusive"])
    plan_b = plan(pb, first, ["abusive"])
    assert plan_a == plan_b and plan_a["path"] == "first_offence" and plan_a["template"] == "warning_abusive"
    history = pb.sender_history("sam@example.org")
    assert history.sender.state == "warned" and len(history.messages) == 1
    assert [e.kind for e in history.events] == ["flagged", "warned"]

    second = plan(pb, message(body="[[extortion]]"), ["extortion"])
    assert (second["path"], second["template"], second["state_after"]) == (
        "offence_after_warning", "termination_extortion", "terminated")
    third = plan(pb, message(body="[[abusive]]"), ["abusive"])
    assert (third["path"], third["template"]) == ("after_termination", None)


def test_no_plan_for_our_own_address_machines_or_a_disabled_playbook(tmp_path, clock):
    pb = make_playbook(settings(tmp_path), clock)
    assert plan(pb, message(sender="Support <Support+x@acme.example>"), ["abusive"]) is None
    assert plan(pb, message(sender="MAILER-DAEMON@mx.example.org"), ["abusive"]) is None
    off = make_playbook(settings(tmp_path / "off", enabled=False), clock)
    assert plan(off, message(), ["abusive"]) is None


def test_a_reset_puts_the_sender_back_to_clear(tmp_path, clock):
    pb = make_playbook(settings(tmp_path), clock)
    plan(pb, message(sender="Sam <s.a.m+1@gmail.com>"), ["legal_threat"])
    assert pb.sender_history("sam@gmail.com").sender.state == "legal"
    sender = pb.reset_sender("SAM@googlemail.com", actor="admin", reason="settled")
    assert (sender.state, sender.warned_type, sender.reset_at is not None) == ("clear", None, True)
    event = pb.sender_history("sam@gmail.com").events[-1]
    assert (event.kind, event.actor, event.detail["before"]["state"]) == ("reset", "admin", "legal")
    assert plan(pb, message(sender="sam@gmail.com"), ["abusive"])["path"] == "first_offence"
    with pytest.raises(UnknownSenderError):
        pb.reset_sender("nobody@example.org", actor="admin")


def test_will_is_more_than_n_new_conversations_in_d_days(tmp_path, clock):
    pb = make_playbook(settings(tmp_path, will={"conversations": 10, "days": 14}), clock)
    old = message()
    plan(pb, old)  # 20 days before the run below: outside the window
    clock.now = START + timedelta(days=20)
    plans = []
    for day in range(10):
        clock.now = START + timedelta(days=20, hours=day)
        plans.append(plan(pb, message()))
    # Replies inside known threads are not new conversations.
    plans.append(plan(pb, message(in_reply_to=old.message_id)))
    assert [p["will_candidate"] for p in plans] == [False] * 11
    assert plans[-1]["opens_conversation"] is False
    eleventh = plan(pb, message())
    assert eleventh["will_candidate"] and eleventh["conversations"] == 11
    # Without Will drafts (the default) a candidate is tagged and recorded, nothing more.
    assert (eleventh["path"], eleventh["template"], eleventh["state_after"]) == ("will_candidate", None, "clear")
    history = pb.sender_history("sam@example.org")
    assert history.sender.will_candidate and history.events[-1].kind == "will_candidate"
    # An admin reset starts the count afresh.
    pb.reset_sender("sam@example.org", actor="admin")
    clock.now += timedelta(minutes=1)
    assert plan(pb, message())["will_candidate"] is False


def test_will_drafts_warn_then_terminate_on_a_new_run(tmp_path, clock):
    pb = make_playbook(settings(tmp_path, will={"conversations": 2, "days": 14, "drafts": True}), clock)
    paths = []
    for hours in range(6):
        clock.now = START + timedelta(hours=hours)
        paths.append(plan(pb, message())["path"])
    # 3rd conversation: warning; the count restarts, so the 3rd after it terminates.
    assert paths == ["none", "none", "first_offence", "none", "none", "offence_after_warning"]


@pytest.mark.parametrize("delta", [timedelta(days=13, hours=23), timedelta(days=14, hours=1)])
def test_the_will_window_is_d_days(tmp_path, clock, delta):
    pb = make_playbook(settings(tmp_path, will={"conversations": 1, "days": 14}), clock)
    plan(pb, message())
    clock.now = START + delta
    assert plan(pb, message())["will_candidate"] is (delta < timedelta(days=14))


# -- the docs index --------------------------------------------------------------------------


def tiny_embed(texts, kind):  # type: ignore[no-untyped-def]
    """A deterministic bag-of-words embedding: enough to tell pages apart in a test."""
    vectors = []
    for text in texts:
        vector = [0.0] * 64
        for word in re.findall(r"\w+", text.lower()):
            if len(word) > 3:
                vector[zlib.crc32(word.encode()) % 64] += 1.0
        vectors.append(vector)
    return vectors


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "checkout").mkdir(parents=True)
    (root / "checkout" / "currency.md").write_text(
        "# Currency and prices\n\nChange the currency symbol and the decimals in Settings > Currency.\n")
    (root / "taxes.md").write_text(
        "---\ntitle: Tax rates\nurl: https://help.acme.example/tax\n---\nSet the tax rate for every country.\n")
    (root / "translate.html").write_text(
        '<html><head><title>Translating labels</title><link rel="canonical" href="https://help.acme.example/i18n">'
        "</head><body><h1>Translating</h1><p>Translate the cart button labels with the strings editor.</p>"
        "</body></html>")
    return root


def test_the_docs_index_finds_the_closest_page(docs):
    calls: list[str] = []

    def counting(texts, kind):  # type: ignore[no-untyped-def]
        calls.append(kind)
        return tiny_embed(texts, kind)

    index = DocsIndex(docs, "https://docs.acme.example/", counting)
    page, similarity = index.best("How do I change the currency symbol in the checkout?")
    assert page.url == "https://docs.acme.example/checkout/currency.html" and page.title == "Currency and prices"
    assert 0 < similarity <= 1
    assert index.best("which tax rate applies to another country")[0].url == "https://help.acme.example/tax"
    assert index.best("translate the cart button labels")[0].url == "https://help.acme.example/i18n"
    assert calls.count("passage") == 1  # pages are embedded once, then only questions
    (docs / "taxes.md").write_text("# Taxes\n\nNothing about rates here any more.\n")
    index.refresh()
    assert calls.count("passage") == 2
    assert read_page(docs, docs / "translate.html", "https://x").title == "Translating labels"


def test_the_will_warning_links_the_page_that_answers_the_question(tmp_path, docs, clock):
    config = settings(tmp_path, will={"docs_dir": str(docs), "docs_base_url": "https://docs.acme.example"})
    pb = make_playbook(config, clock, embed=tiny_embed)
    parsed = message(body="Hello, how can I change the currency symbol and decimals of my shop prices please?")
    composed = pb.composer.compose("warning_will", parsed, config.mailboxes[0])
    assert composed.state == "ready" and composed.reply is not None
    assert "\nhttps://docs.acme.example/checkout/currency.html\n" in composed.reply.text
    assert composed.note["docs_page"]["title"] == "Currency and prices"


def test_the_real_embedder_loads_only_when_a_docs_index_needs_it(tmp_path, docs, clock):
    pb = make_playbook(settings(tmp_path), clock)
    assert pb._docs_index() is None  # no docs index configured: nothing to load
    config = settings(tmp_path / "b", will={"docs_dir": str(docs), "docs_base_url": "https://d.example"})
    lazy = make_playbook(config, clock)
    assert lazy._docs is None
    index = lazy._docs_index()
    assert isinstance(index, DocsIndex) and isinstance(index.embed, BaseModelEmbedder)
    assert index.embed._model is None  # still not loaded: only a Will draft loads it


@pytest.mark.slow
def test_the_real_base_model_embeddings_pick_the_right_page(docs):
    index = DocsIndex(docs, "https://docs.acme.example", BaseModelEmbedder())
    assert index.best("Wie ändere ich das Währungssymbol im Shop?")[0].title == "Currency and prices"
    assert index.best("كيف أترجم أزرار سلة التسوق؟")[0].title == "Translating labels"


# -- settings ----------------------------------------------------------------------------------


def test_new_sections_have_defaults_and_secrets_come_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "ws.toml"
    path.write_text('[smtp]\nhost = "smtp.acme.example"\nusername = "agent"\n'
                    '[playbook]\ntemplates_dir = "mine"\n[playbook.will]\ndocs_dir = "docs"\ndocs_base_url = "https://d"\n')
    monkeypatch.setenv("WARNINGSHOT_SMTP__PASSWORD", "from-the-env")
    loaded = load_settings(path)
    assert loaded.smtp.password.get_secret_value() == "from-the-env" and loaded.smtp.effective_port == 587
    assert loaded.playbook.templates_dir == tmp_path / "mine" and loaded.playbook.will.docs_dir == tmp_path / "docs"
    assert loaded.counsel.folder == "" and loaded.playbook.will.conversations == 10 and loaded.playbook.will.days == 14
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nhost = "smtp.acme.example"\nsecurity = "plain"\n[playbook.will]\ndocs_dir = "d"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(bad)
    assert any(p.startswith("smtp:") for p in caught.value.problems)
    assert any("docs_base_url" in p for p in caught.value.problems)


# -- SMTP over TLS with AUTH (aiosmtpd) ------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.fixture
def tls_smtp(certificate: tuple[Path, ssl.SSLContext]) -> Iterator[tuple[object, int, Path, str]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    from conftest import SmtpCatcher

    from service.local_dovecot import free_port

    cert, context = certificate

    def authenticate(server, session, envelope, mechanism, data):  # type: ignore[no-untyped-def]
        return AuthResult(success=(data.login, data.password) == (b"agent", b"s3cret-pass"), handled=False)

    handler = SmtpCatcher()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, authenticator=authenticate)
    controller.start()
    yield handler, port, cert, "s3cret-pass"
    controller.stop()


def test_smtp_starttls_with_auth_delivers_and_a_refused_login_is_not_retried(tls_smtp):
    handler, port, cert, password = tls_smtp
    good = SmtpSettings(host="localhost", port=port, security="starttls", username="agent", password=password,
                        tls_ca_file=cert, retry_delay_seconds=0, timeout_seconds=5)
    delivery = SmtpSender(good).send("support@acme.example", ["sam@example.org"], b"Subject: hi\r\n\r\nHello\r\n")
    assert delivery.attempts == 1 and handler.received[0].rcpt_tos == ("sam@example.org",)
    wrong = SmtpSettings.model_validate({**good.model_dump(), "password": "wrong-pass"})
    with pytest.raises(SendRefusedError) as caught:
        SmtpSender(wrong).send("support@acme.example", ["sam@example.org"], b"Subject: hi\r\n\r\nHello\r\n")
    assert caught.value.attempts == 1 and "wrong-pass" not in str(caught.value)
    assert len(handler.received) == 1


def test_smtp_over_implicit_tls(certificate):
    from aiosmtpd.controller import Controller
    from conftest import SmtpCatcher

    from service.local_dovecot import free_port

    cert, context = certificate
    handler, port = SmtpCatcher(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        settings = SmtpSettings(host="localhost", port=port, security="tls", tls_ca_file=cert, timeout_seconds=5)
        SmtpSender(settings).send("support@acme.example", ["sam@example.org"], b"Subject: hi\r\n\r\nHello\r\n")
        untrusted = SmtpSettings(host="localhost", port=port, security="tls", timeout_seconds=5, max_attempts=2,
                                 retry_delay_seconds=0)
        with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            SmtpSender(untrusted).send("support@acme.example", ["sam@example.org"], b"Subject: hi\r\n\r\nHi\r\n")
    finally:
        controller.stop()
    assert len(handler.received) == 1


def test_composer_with_docs_none_uses_the_configured_docs_url(tmp_path, clock):
    pb = make_playbook(settings(tmp_path, docs_url="https://docs.acme.example/start"), clock)
    composed = pb.composer.compose("warning_will", message(), pb.settings.mailboxes[0])
    assert composed.state == "ready" and composed.reply is not None
    assert "https://docs.acme.example/start" in composed.reply.text
    assert isinstance(pb.composer, Composer) and isinstance(pb.composer.renderer, TemplateRenderer)


def test_migration_0002_builds_exactly_the_playbook_tables(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.store.tables import Base

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    mine = {"senders", "sender_messages", "sender_events", "drafts", "counsel_forwards"}
    with store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if any(name in str(d) for name in mine)] == []
    assert mine <= set(Base.metadata.tables)
