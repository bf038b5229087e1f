"""The playbook end to end: the real daemon, a real Dovecot, a real SMTP server.

The daemon runs as a child process with the marker test double as its
model; the test process plays the admin API, calling approve_draft and
reject_draft on a Playbook over the same store and mailbox.
"""

from __future__ import annotations

import sqlite3
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from conftest import deliver, flags_by_message_id, imap, wait_for, write_config
from marker_classifier import MarkerClassifier

from service.errors import DraftBlockedError, DraftStateError, SendError
from service.local_dovecot import Dovecot
from service.playbook.engine import Playbook
from service.settings import load_settings
from service.store import Store

SUPPORT = "support@example.com"
JANE = "Jane Doe <jane.doe@example.org>"


def mail(key: str, body: str, *, sender: str = JANE, subject: str = "Plugin problem", in_reply_to: str | None = None,
         references: str | None = None) -> bytes:
    headers = [
        f"From: {sender}",
        f"To: {SUPPORT}",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        f"Message-ID: <{key}@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    if references:
        headers.append(f"References: {references}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()


ENGLISH = "Hello, the shipping rates in my shop are wrong again since the update and I need them fixed."
HEBREW = "שלום, האתר שלי לא עולה מאז הבוקר ואף אחד לא עונה בצ'אט. מה קורה אצלכם?"


def playbook_config(tmp_path: Path, server: Dovecot, smtp, extra: str = "", *, daemon: str = "",  # type: ignore[no-untyped-def]
                    playbook: str = "") -> Path:
    sections = f"""{daemon}
[playbook]
company = "Acme Plugins"
agent_name = "Dana"
refund_terms = "The refund reaches your account within five business days."
docs_url = "https://docs.example.com/"
{playbook}

[smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "plain"
retry_delay_seconds = 0.05
{extra}
"""
    return write_config(tmp_path, server, sections, mailbox_extra=f'address = "{SUPPORT}"')


def open_playbook(config: Path) -> Playbook:
    """The admin side: a Playbook over the daemon's store, as the API builds it."""
    settings = load_settings(config)
    store = Store(settings.store.url)
    classifier = MarkerClassifier()
    return Playbook(settings, store, score=classifier.predict, thresholds=lambda: classifier.thresholds)


def folder(server: Dovecot, name: str) -> list[tuple[set[str], EmailMessage]]:
    client = imap(server)
    try:
        if not client.folder_exists(name):
            return []
        client.select_folder(name, readonly=True)
        data = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[]"])
        return [
            ({f.decode() if isinstance(f, bytes) else str(f) for f in item[b"FLAGS"]},
             BytesParser(policy=policy.default).parsebytes(item[b"BODY[]"]))
            for _uid, item in sorted(data.items())
        ]
    finally:
        client.logout()


def drafts(tmp_path: Path, where: str = "1=1") -> list[sqlite3.Row]:
    try:
        with sqlite3.connect(tmp_path / "store.db") as db:
            db.row_factory = sqlite3.Row
            return db.execute(f"SELECT * FROM drafts WHERE {where} ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the daemon has not migrated the store yet
        return []


def sender_state(tmp_path: Path, address: str) -> tuple[str, str | None]:
    with sqlite3.connect(tmp_path / "store.db") as db:
        row = db.execute("SELECT state, warned_type FROM senders WHERE address = ?", (address,)).fetchone()
    return tuple(row) if row else ("unknown", None)  # type: ignore[return-value]


def done(tmp_path: Path, n: int) -> bool:
    try:
        with sqlite3.connect(tmp_path / "store.db") as db:
            return db.execute("SELECT count(*) FROM messages WHERE state = 'done'").fetchone()[0] >= n
    except sqlite3.OperationalError:
        return False


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def test_warning_shot_draft_lands_in_drafts_threaded_and_approval_sends_it_once(
    dovecot, smtp_server, daemon_process, tmp_path
):
    deliver(dovecot, mail("t1", f"{ENGLISH}\nYou are a bunch of clowns [[abusive]]", subject="Re: RE: Shipping rates",
                          references="<older@example.org>"))
    config = playbook_config(tmp_path, dovecot, smtp_server)
    daemon_process(config)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 1, 20, what="the draft in Drafts")

    flags, draft = folder(dovecot, "Drafts")[0]
    assert {"\\Draft", "\\Seen"} <= flags
    assert draft["Subject"] == "Re: Shipping rates"
    assert draft["In-Reply-To"] == "<t1@example.org>"
    assert draft["References"].split() == ["<older@example.org>", "<t1@example.org>"]
    assert draft["From"].addresses[0].addr_spec == SUPPORT
    assert draft["To"].addresses[0].addr_spec == "jane.doe@example.org"
    assert draft["Content-Language"] == "en"
    body = text_of(draft)
    assert body.startswith("Hello Jane Doe,")
    assert "mutual respect" in body and "Dana" in body
    # The internal note (labels, evidence) is in the store, never in the mail.
    assert "[[abusive]]" not in draft.as_string() and "clowns" not in draft.as_string()
    (row,) = drafts(tmp_path)
    assert row["state"] == "appended" and row["template"] == "warning_abusive"
    assert '"abusive"' in row["note"] and "clowns" in row["note"]
    assert sender_state(tmp_path, "jane.doe@example.org") == ("warned", "abusive")
    assert "Abusive" in flags_by_message_id(dovecot)["<t1@example.org>"]

    admin = open_playbook(config)
    sent = admin.approve_draft(row["id"], actor="alice")
    assert sent.state == "sent" and sent.approved_by == "alice" and sent.sent_at is not None
    assert len(smtp_server.received) == 1
    delivered = smtp_server.received[0]
    assert delivered.mail_from == SUPPORT and delivered.rcpt_tos == ("jane.doe@example.org",)
    out = delivered.message()
    assert out["Message-ID"] == draft["Message-ID"]
    assert out["In-Reply-To"] == "<t1@example.org>" and out["Subject"] == "Re: Shipping rates"
    assert text_of(out) == body
    assert folder(dovecot, "Drafts") == []
    ((sent_flags, filed),) = folder(dovecot, "Sent")
    assert "\\Seen" in sent_flags and filed["Message-ID"] == draft["Message-ID"]

    with pytest.raises(DraftStateError):
        admin.approve_draft(row["id"], actor="alice")
    assert len(smtp_server.received) == 1
    history = admin.sender_history("Jane.Doe+shop@Example.org")
    assert [e.kind for e in history.events] == ["flagged", "warned", "draft_made", "draft_sent"]
    assert history.events[-1].actor == "alice"


def test_legal_threat_in_hebrew_is_routed_to_counsel_and_drafted_right_to_left(
    dovecot, smtp_server, daemon_process, tmp_path
):
    sender = "Noa <noa@example.co.il>"
    deliver(dovecot, mail("l1", f"{HEBREW}\nאני אתבע אתכם [[legal_threat]]", sender=sender, subject="האתר נפל"))
    counsel = '\n[counsel]\nfolder = "Legal"\naddress = "counsel@law.example"\n'
    config = playbook_config(tmp_path, dovecot, smtp_server, counsel)
    daemon = daemon_process(config)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 1 and len(smtp_server.received) == 1, 20,
             what="draft and forward")

    _flags, draft = folder(dovecot, "Drafts")[0]
    assert draft["Content-Language"] == "he" and draft["Subject"] == "Re: האתר נפל"
    assert draft.get_content_type() == "multipart/alternative"
    plain, html = draft.get_body(("plain",)), draft.get_body(("html",))
    assert plain is not None and html is not None
    assert "בא כוחנו" in plain.get_content()  # further correspondence through counsel
    assert 'dir="rtl"' in html.get_content() and 'lang="he"' in html.get_content()
    assert drafts(tmp_path)[0]["template"] == "termination_legal"
    assert sender_state(tmp_path, "noa@example.co.il") == ("legal", None)
    # Routed: copied to the counsel folder, tagged, and forwarded as an attachment.
    assert [m["Message-ID"] for _f, m in folder(dovecot, "Legal")] == ["<l1@example.org>"]
    assert "WarningShot/Counsel" in flags_by_message_id(dovecot)["<l1@example.org>"]
    forward = smtp_server.received[0]
    assert forward.rcpt_tos == ("counsel@law.example",) and forward.mail_from == SUPPORT
    (attached,) = list(forward.message().iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert mail("l1", f"{HEBREW}\nאני אתבע אתכם [[legal_threat]]", sender=sender, subject="האתר נפל") in forward.data

    # Later mail from the same sender: routed the same way, no new draft.
    deliver(dovecot, mail("l2", "עוד שאלה קטנה לגבי החשבונית של החודש שעבר, תודה.", sender="noa+x@EXAMPLE.co.il"))
    wait_for(lambda: len(smtp_server.received) == 2, 20, what="the second forward")
    wait_for(lambda: done(tmp_path, 2), 10)
    assert [m["Message-ID"] for _f, m in folder(dovecot, "Legal")] == ["<l1@example.org>", "<l2@example.org>"]
    assert len(drafts(tmp_path)) == 1 and len(folder(dovecot, "Drafts")) == 1
    assert "forwarded to counsel" in daemon.log()
    assert "עוד שאלה" not in daemon.log()  # no mail text in the logs


def test_escalation_ladder_across_restarts_for_one_sender_under_several_addresses(
    dovecot, smtp_server, daemon_process, tmp_path
):
    config = playbook_config(tmp_path, dovecot, smtp_server)
    deliver(dovecot, mail("e1", f"{ENGLISH}\nFix it today or I post a one-star review everywhere [[extortion]]",
                          sender="Bob <bob.smith+orders@gmail.com>"))
    first = daemon_process(config)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 1, 20)
    assert first.terminate() == 0
    assert sender_state(tmp_path, "bobsmith@gmail.com") == ("warned", "extortion")

    second = daemon_process(config)
    deliver(dovecot, mail("e2", ENGLISH, sender="Bob <b.o.b.smith@googlemail.com>"))
    deliver(dovecot, mail("e3", f"{ENGLISH}\nYou incompetent fools [[abusive]]", sender="Bob <BobSmith@gmail.com>"))
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 2, 20)
    assert second.terminate() == 0
    assert sender_state(tmp_path, "bobsmith@gmail.com") == ("terminated", None)

    third = daemon_process(config)
    deliver(dovecot, mail("e4", f"{ENGLISH}\n[[abusive]] still clowns", sender="bob.smith@gmail.com"))
    wait_for(lambda: done(tmp_path, 4), 20)
    third.terminate()

    rows = drafts(tmp_path)
    assert [(r["template"], r["state"]) for r in rows] == [
        ("warning_extortion", "appended"), ("termination_abusive", "appended")
    ]
    termination = next(m for _f, m in folder(dovecot, "Drafts") if m["In-Reply-To"] == "<e3@example.org>")
    body = text_of(termination)
    assert "We will refund your purchase in full. The refund reaches your account" in body
    # The explanation quotes the sender's earlier words, as quotes (the litmus test skips them).
    assert "> Fix it today or I post a one-star review everywhere [[extortion]]" in body
    assert "> You incompetent fools [[abusive]]" in body
    events = open_playbook(config).sender_history("bobsmith@gmail.com").events
    assert [e.kind for e in events if e.kind in ("warned", "terminated", "offence_after_termination")] == [
        "warned", "terminated", "offence_after_termination"
    ]


def test_a_draft_is_appended_once_even_after_a_crash_before_it_was_recorded(
    dovecot, smtp_server, daemon_process, tmp_path
):
    deliver(dovecot, mail("c1", f"{ENGLISH}\n[[abusive]] morons"))
    config = playbook_config(tmp_path, dovecot, smtp_server)
    daemon = daemon_process(config)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 1, 20)
    wait_for(lambda: done(tmp_path, 1), 10)
    daemon.terminate()
    # As if the process died after APPEND and before recording it: the
    # message is 'decided' again and the draft row still says 'ready'.
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE messages SET state = 'decided'")
        db.execute("UPDATE checkpoints SET last_uid = 0")
        db.execute("UPDATE drafts SET state = 'ready'")
    daemon_process(config)
    wait_for(lambda: drafts(tmp_path)[0]["state"] == "appended", 20)
    wait_for(lambda: done(tmp_path, 1), 10)
    assert len(folder(dovecot, "Drafts")) == 1
    assert len(drafts(tmp_path)) == 1


def test_the_litmus_test_blocks_a_template_the_classifier_flags(dovecot, smtp_server, daemon_process, tmp_path):
    overrides = tmp_path / "templates" / "en"
    overrides.mkdir(parents=True)
    (overrides / "warning_abusive.txt").write_text(
        "Hello,\n\nStop writing to us, you [[abusive]] customer.\n\n{{ agent_name }}\n", encoding="utf-8"
    )
    # Relative to the config file, like every path in it.
    config = playbook_config(tmp_path, dovecot, smtp_server, playbook='templates_dir = "templates"')
    deliver(dovecot, mail("b1", f"{ENGLISH}\n[[abusive]] you idiots"))
    deliver(dovecot, mail("b2", f"{ENGLISH}\nPay me back or I tell all my followers [[extortion]]",
                          sender="Xavier <x@example.net>"))
    daemon = daemon_process(config)
    wait_for(lambda: len(drafts(tmp_path)) == 2 and done(tmp_path, 2), 20)
    blocked, fine = drafts(tmp_path)
    assert blocked["state"] == "blocked" and "abusive" in blocked["error"]
    assert blocked["message_id"] is None and blocked["raw"] is None
    assert fine["state"] == "appended" and fine["template"] == "warning_extortion"
    assert [m["In-Reply-To"] for _f, m in folder(dovecot, "Drafts")] == ["<b2@example.org>"]
    assert "draft #1 (warning_abusive, en): blocked" in daemon.log()
    kinds = [e.kind for e in open_playbook(config).sender_history("jane.doe@example.org").events]
    assert "draft_blocked" in kinds


def test_send_failures_are_retried_reported_and_never_lose_the_draft(dovecot, smtp_server, daemon_process, tmp_path):
    deliver(dovecot, mail("s1", f"{ENGLISH}\n[[abusive]] clowns"))
    deliver(dovecot, mail("s2", f"{ENGLISH}\n[[abusive]] clowns", sender="Max <max@example.de>"))
    config = playbook_config(tmp_path, dovecot, smtp_server)
    daemon_process(config)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 2, 20)
    first, second = drafts(tmp_path)
    admin = open_playbook(config)

    smtp_server.refuse = 10
    with pytest.raises(SendError, match="gave up after 3 tries"):
        admin.approve_draft(first["id"], actor="alice")
    failed = admin.get_draft(first["id"])
    assert failed.state == "send_failed" and failed.send_attempts == 3 and "451" in (failed.error or "")
    assert len(folder(dovecot, "Drafts")) == 2 and smtp_server.received == []

    smtp_server.refuse = 0
    with pytest.raises(DraftBlockedError):
        admin.approve_draft(first["id"], actor="alice", edited_text="Hello,\n\nyou [[abusive]] person.\n")
    assert smtp_server.received == [] and admin.get_draft(first["id"]).state == "send_failed"
    edited = "Hello Jane,\n\nPlease keep it civil; we are working on your shipping rates.\n\nDana\n"
    sent = admin.approve_draft(first["id"], actor="alice", edited_text=edited)
    assert sent.state == "sent" and sent.edited and sent.send_attempts == 4
    (delivered,) = smtp_server.received
    assert text_of(delivered.message()) == edited

    rejected = admin.reject_draft(second["id"], actor="bob", reason="handled by phone")
    assert rejected.state == "rejected" and rejected.rejected_by == "bob"
    assert folder(dovecot, "Drafts") == []
    with pytest.raises(DraftStateError):
        admin.approve_draft(second["id"], actor="bob")
    assert len(smtp_server.received) == 1


def test_dry_run_decides_and_drafts_but_changes_and_sends_nothing(dovecot, smtp_server, daemon_process, tmp_path):
    deliver(dovecot, mail("d1", f"{ENGLISH}\n[[legal_threat]] see you in court"))
    counsel = '\n[counsel]\nfolder = "Legal"\naddress = "c@law.example"\n'
    config = playbook_config(tmp_path, dovecot, smtp_server, counsel, daemon="dry_run = true")
    daemon_process(config)
    wait_for(lambda: done(tmp_path, 1) and len(drafts(tmp_path)) == 1, 20)
    (row,) = drafts(tmp_path)
    assert row["state"] == "ready" and row["template"] == "termination_legal"
    assert sender_state(tmp_path, "jane.doe@example.org") == ("legal", None)
    assert folder(dovecot, "Drafts") == [] and folder(dovecot, "Legal") == []
    assert flags_by_message_id(dovecot)["<d1@example.org>"] == set()
    approved = open_playbook(config).approve_draft(row["id"], actor="alice")
    assert approved.state == "dry_run" and approved.approved_by == "alice"
    assert smtp_server.received == []


def test_will_candidate_is_tagged_and_gets_the_will_warning_when_enabled(
    dovecot, smtp_server, daemon_process, tmp_path
):
    will = "\n[playbook.will]\nconversations = 2\ndays = 14\ndrafts = true\n"
    config = playbook_config(tmp_path, dovecot, smtp_server, will)
    deliver(dovecot, mail("w1", "How do I change the currency symbol in the checkout page of my shop?"))
    deliver(dovecot, mail("w2", "Where do I set the tax rate for customers in another country?"))
    # A reply inside an open thread is not a new conversation.
    deliver(dovecot, mail("w3", "Thanks, and what about the decimals there?", subject="Re: Plugin problem",
                          in_reply_to="<w1@example.org>", references="<w1@example.org>"))
    deliver(dovecot, mail("w4", "How can I translate the button labels of the cart into German?"))
    daemon_process(config)
    wait_for(lambda: done(tmp_path, 4), 20)
    wait_for(lambda: len(folder(dovecot, "Drafts")) == 1, 10)
    flags = flags_by_message_id(dovecot)
    assert [k for k in ("<w1@example.org>", "<w2@example.org>", "<w3@example.org>", "<w4@example.org>")
            if "WarningShot/Will" in flags[k]] == ["<w4@example.org>"]
    (row,) = drafts(tmp_path)
    assert row["template"] == "warning_will"
    assert "https://docs.example.com/" in text_of(folder(dovecot, "Drafts")[0][1])
    assert sender_state(tmp_path, "jane.doe@example.org") == ("warned", "will")
