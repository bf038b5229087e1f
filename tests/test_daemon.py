"""The daemon against a real Dovecot: tagging, exactly-once, reconnects, routing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from conftest import (
    DaemonProcess,
    deliver,
    flags_by_message_id,
    imap,
    make_mail,
    wait_for,
    write_config,
)

from service.local_dovecot import Dovecot

SCANNED = "WarningShot/Scanned"


def scanned(server: Dovecot, folder: str = "INBOX") -> dict[str, set[str]]:
    return {k: v for k, v in flags_by_message_id(server, folder).items() if SCANNED in v}


def rows(tmp_path: Path, where: str = "1=1") -> list[tuple]:
    with sqlite3.connect(tmp_path / "store.db") as db:
        return db.execute(f"SELECT uid, message_key, state, labels, attempts FROM messages WHERE {where} ORDER BY uid").fetchall()


def test_new_mail_is_tagged_within_seconds_with_idle(dovecot, daemon_process, tmp_path):
    daemon = daemon_process(write_config(tmp_path, dovecot))
    wait_for(lambda: "support/INBOX: connected" in daemon.log(), 15, what="connection")
    time.sleep(0.5)  # the watcher is in IDLE now
    started = time.monotonic()
    deliver(dovecot, make_mail(1, body="Refund me or I post this everywhere [[extortion]]"))
    wait_for(lambda: "Extortion" in flags_by_message_id(dovecot).get("<ticket-1@example.org>", set()), 5, 0.05)
    assert time.monotonic() - started < 5
    assert "polling" not in daemon.log()


def test_new_mail_is_tagged_by_polling_when_server_lacks_idle(dovecot, daemon_process, tmp_path):
    dovecot.stop()
    reduced = Dovecot(users={"support": "support-pass"}, capabilities="IMAP4rev1 LITERAL+ UIDPLUS")
    reduced.start()
    try:
        daemon_process(write_config(tmp_path, reduced))
        deliver(reduced, make_mail(1, body="[[abusive]] you clowns"))
        wait_for(lambda: "Abusive" in flags_by_message_id(reduced).get("<ticket-1@example.org>", set()), 10)
        deliver(reduced, make_mail(2))
        wait_for(lambda: "<ticket-2@example.org>" in scanned(reduced), 10)
    finally:
        reduced.cleanup()


def test_fetching_never_marks_mail_as_read(dovecot, daemon_process, tmp_path):
    deliver(dovecot, make_mail(1))
    daemon_process(write_config(tmp_path, dovecot))
    wait_for(lambda: "<ticket-1@example.org>" in scanned(dovecot), 15)
    assert "\\Seen" not in flags_by_message_id(dovecot)["<ticket-1@example.org>"]


def test_sigkill_mid_batch_then_restart_handles_every_message_exactly_once(dovecot, daemon_process, tmp_path):
    total = 40
    for n in range(total):
        deliver(dovecot, make_mail(n, body="[[abusive]] idiots" if n % 5 == 0 else "where is my invoice?"))
    config = write_config(tmp_path, dovecot)
    slow = {"WS_TEST_DELAY": "0.05"}
    first = daemon_process(config, slow)
    wait_for(lambda: 5 <= len(scanned(dovecot)) < total, 30, 0.02, "a partly handled batch")
    first.kill()
    handled_before_kill = len(scanned(dovecot))
    assert handled_before_kill < total
    daemon_process(config)
    wait_for(lambda: len(scanned(dovecot)) == total, 60, what="every message tagged")
    time.sleep(1)  # anything handled twice would show up now

    records = rows(tmp_path)
    assert [r[0] for r in records] == list(range(1, total + 1))
    assert {r[2] for r in records} == {"done"}
    flags = flags_by_message_id(dovecot)
    for n in range(total):
        expected = n % 5 == 0
        assert ("Abusive" in flags[f"<ticket-{n}@example.org>"]) == expected
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("SELECT last_uid FROM checkpoints").fetchone() == (total,)


def test_sigterm_finishes_cleanly_with_exit_code_zero(dovecot, daemon_process, tmp_path):
    for n in range(10):
        deliver(dovecot, make_mail(n))
    daemon = daemon_process(write_config(tmp_path, dovecot), {"WS_TEST_DELAY": "0.05"})
    wait_for(lambda: len(scanned(dovecot)) >= 2, 20)
    assert daemon.terminate() == 0
    assert "stopped cleanly" in daemon.log()
    done = rows(tmp_path, "state = 'done'")
    # Whatever was tagged is recorded, and the checkpoint covers exactly that.
    assert len(done) == len(scanned(dovecot))
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("SELECT last_uid FROM checkpoints").fetchone() == (max(r[0] for r in done),)


def test_dovecot_restart_while_running_loses_nothing(dovecot, daemon_process, tmp_path):
    daemon = daemon_process(write_config(tmp_path, dovecot))
    for n in range(3):
        deliver(dovecot, make_mail(n))
    wait_for(lambda: len(scanned(dovecot)) == 3, 15)
    dovecot.kick()
    dovecot.stop()
    time.sleep(1.5)  # the daemon notices and backs off
    dovecot.start()
    for n in range(3, 8):
        deliver(dovecot, make_mail(n, body="[[legal_threat]] my lawyer" if n == 5 else "hello"))
    wait_for(lambda: len(scanned(dovecot)) == 8, 30, what="all 8 tagged after the restart")
    assert "LegalThreat" in flags_by_message_id(dovecot)["<ticket-5@example.org>"]
    assert "reconnecting" in daemon.log()
    assert len(rows(tmp_path)) == 8


def test_uidvalidity_change_rescans_without_handling_a_message_twice(dovecot, daemon_process, tmp_path):
    folder = "Support"
    for n in range(4):
        deliver(dovecot, make_mail(n, body="[[abusive]] fools" if n == 1 else "hi"), folder)
    config = write_config(tmp_path, dovecot, folders=f'["{folder}"]')
    daemon = daemon_process(config)
    wait_for(lambda: len(scanned(dovecot, folder)) == 4, 15)
    daemon.terminate()

    client = imap(dovecot)
    client.delete_folder(folder)
    client.create_folder(folder)
    client.logout()
    for n in range(6):  # the same four again, plus two new ones
        deliver(dovecot, make_mail(n, body="[[abusive]] fools" if n == 1 else "hi"), folder)

    daemon = daemon_process(config)
    wait_for(lambda: len(scanned(dovecot, folder)) == 6, 15)
    assert "UIDVALIDITY changed" in daemon.log()
    assert "Abusive" in flags_by_message_id(dovecot, folder)["<ticket-1@example.org>"]
    records = rows(tmp_path)
    done_keys = [r[1] for r in records if r[2] == "done"]
    assert len(done_keys) == len(set(done_keys)) == 6
    assert sum(1 for r in records if r[2] == "skipped") == 4


@pytest.mark.parametrize("capabilities", [None, "IMAP4rev1 LITERAL+ UIDPLUS IDLE"], ids=["MOVE", "no-MOVE"])
def test_flagged_mail_is_moved_to_the_label_folder(tmp_path, daemon_process, capabilities):
    server = Dovecot(users={"support": "support-pass"}, capabilities=capabilities)
    server.start()
    try:
        for n in range(3):
            deliver(server, make_mail(n, body="[[abusive]] morons" if n == 1 else "hi"))
        routes = '[tagging.routes.abusive]\nkeyword = "Abusive"\nfolder = "WarningShot/Abusive"\nmode = "move"\n'
        daemon_process(write_config(tmp_path, server, routes))
        wait_for(lambda: "<ticket-1@example.org>" in scanned(server, "WarningShot/Abusive"), 15)
        wait_for(lambda: len(scanned(server)) == 2, 15)
        inbox = flags_by_message_id(server)
        assert "<ticket-1@example.org>" not in inbox  # moved, and expunged without MOVE
        assert "Abusive" in flags_by_message_id(server, "WarningShot/Abusive")["<ticket-1@example.org>"]
    finally:
        server.cleanup()


def test_copy_route_keeps_the_original_and_copies_once(dovecot, daemon_process, tmp_path):
    deliver(dovecot, make_mail(1, body="[[legal_threat]] see you in court"))
    routes = '[tagging.routes.legal_threat]\nkeyword = "LegalThreat"\nfolder = "Counsel"\nmode = "copy"\n'
    config = write_config(tmp_path, dovecot, routes)
    daemon = daemon_process(config)
    wait_for(lambda: "<ticket-1@example.org>" in flags_by_message_id(dovecot, "Counsel"), 15)
    assert "LegalThreat" in flags_by_message_id(dovecot)["<ticket-1@example.org>"]
    daemon.terminate()
    # Forget the outcome but keep the decision, as after a crash between effects.
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE messages SET state = 'decided'")
        db.execute("UPDATE checkpoints SET last_uid = 0")
    daemon_process(config)
    wait_for(lambda: rows(tmp_path)[0][2] == "done", 15)
    client = imap(dovecot)
    client.select_folder("Counsel", readonly=True)
    assert len(client.search(["ALL"])) == 1
    client.logout()


def test_several_mailboxes_are_watched_at_once(dovecot, daemon_process, tmp_path):
    config = write_config(
        tmp_path, dovecot,
        mailbox_extra='\n[[mailboxes]]\nname = "billing"\nhost = "127.0.0.1"\n'
        f'port = {dovecot.port}\nsecurity = "plain"\nusername = "billing"\n',
    )
    daemon_process(config, {"WARNINGSHOT_MAILBOX_BILLING_PASSWORD": "billing-pass"})
    deliver(dovecot, make_mail(1, body="[[extortion]]"))
    deliver(dovecot, make_mail(2, body="[[abusive]]"), user="billing", password="billing-pass")
    wait_for(lambda: "Extortion" in flags_by_message_id(dovecot).get("<ticket-1@example.org>", set()), 15)

    def billing_tagged() -> bool:
        client = imap(dovecot, "billing", "billing-pass")
        try:
            client.select_folder("INBOX", readonly=True)
            return any(b"Abusive" in f for f in client.get_flags(client.search(["ALL"])).values())
        finally:
            client.logout()

    wait_for(billing_tagged, 15)
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert sorted(r[0] for r in db.execute("SELECT mailbox FROM messages")) == ["billing", "support"]


def test_poison_message_is_quarantined_and_the_loop_goes_on(dovecot, daemon_process, tmp_path):
    deliver(dovecot, make_mail(1, body="this text [[crash]]es the model"))
    deliver(dovecot, make_mail(2, body="[[abusive]] after the poison"))
    daemon = daemon_process(write_config(tmp_path, dovecot))
    wait_for(lambda: "Abusive" in flags_by_message_id(dovecot).get("<ticket-2@example.org>", set()), 15)
    flags = flags_by_message_id(dovecot)
    assert "WarningShot/Error" in flags["<ticket-1@example.org>"]
    poison = rows(tmp_path, "uid = 1")[0]
    assert poison[2] == "quarantined" and poison[4] == 3
    assert daemon.alive()


def test_wrong_password_keeps_retrying_without_crashing(dovecot, daemon_process, tmp_path):
    config = write_config(tmp_path, dovecot)
    config.write_text(config.read_text().replace('password = "support-pass"', 'password = "wrong-pass"'))
    daemon = daemon_process(config)
    wait_for(lambda: daemon.log().count("login refused") >= 2, 15)
    assert daemon.alive()
    assert "wrong-pass" not in daemon.log()


def test_unreachable_server_is_retried_with_backoff(tmp_path, daemon_process):
    server = Dovecot()
    config = write_config(tmp_path, server)  # never started: nothing listens on the port
    daemon = daemon_process(config)
    wait_for(lambda: daemon.log().count("reconnecting in") >= 3, 15)
    server.start()
    try:
        deliver(server, make_mail(1))
        wait_for(lambda: "<ticket-1@example.org>" in scanned(server), 20)
        assert daemon.alive()
    finally:
        server.cleanup()


def test_tls_and_starttls_connections(tmp_path, daemon_process):
    server = Dovecot(users={"support": "support-pass"}, tls=True)
    server.start()
    try:
        for security, port in (("tls", server.tls_port), ("starttls", server.port)):
            config = write_config(tmp_path, server)
            text = config.read_text().replace('security = "plain"', f'security = "{security}"')
            text = text.replace(f"port = {server.port}", f'port = {port}\ntls_ca_file = "{server.certificate}"')
            text = text.replace('host = "127.0.0.1"', 'host = "localhost"')
            config.write_text(text)
            n = 1 if security == "tls" else 2
            deliver(server, make_mail(n))
            daemon = daemon_process(config)
            wait_for(lambda n=n: f"<ticket-{n}@example.org>" in scanned(server), 15, what=security)
            daemon.terminate()
    finally:
        server.cleanup()


def test_bad_config_stops_the_daemon_with_every_problem_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[mailboxes]]\nname = "support"\nhost = "x"\nport = 0\nusername = "u"\n[daemon]\nmax_attemps = 2\n')
    process = DaemonProcess(bad).start()
    assert process.proc is not None
    assert process.proc.wait(30) == 2
    log = process.log()
    assert "mailboxes[support].port" in log
    assert "daemon.max_attemps: unknown key" in log
    assert "mailboxes[support]: Value error" not in log


def test_idle_is_renewed_and_mail_still_arrives(dovecot, daemon_process, tmp_path):
    config = write_config(tmp_path, dovecot, mailbox_extra="idle_renew_seconds = 1")
    daemon = daemon_process(config, {"WARNINGSHOT_LOGGING__LEVEL": "DEBUG"})
    wait_for(lambda: daemon.log().count("renewing IDLE") >= 2, 15, what="two IDLE renewals")
    deliver(dovecot, make_mail(1, body="[[extortion]]"))
    wait_for(lambda: "Extortion" in flags_by_message_id(dovecot).get("<ticket-1@example.org>", set()), 10)
    assert "[[extortion]]" not in daemon.log()  # no mail text in logs, even at DEBUG
