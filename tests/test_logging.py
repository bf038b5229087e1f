"""Logs: readable text by default, JSON lines on request, no secrets and no mail bodies in them."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import REPO, SUPPORT, deliver, flags_by_message_id, make_mail, wait_for, write_config

from service.local_dovecot import free_port
from service.logs import REDACTED, configure_logging

MAILBOX_PASSWORD = "mbx-Pa55word-7qz"
SMTP_PASSWORD = "smtp-Pa55word-4kd"
ADMIN_TOKEN = "admin-tok-3c1f9e0d7b2a4e6f"
VIEWER_TOKEN = "viewer-tok-8d2e4f6a1b3c5d7e"
XOAUTH2_TOKEN = "ya29.a0AfH6SMBxoauth2-token-9w8v7u"
SECRETS = (MAILBOX_PASSWORD, SMTP_PASSWORD, ADMIN_TOKEN, VIEWER_TOKEN, XOAUTH2_TOKEN)
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)\s* [\w.]+: .+$")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# -- configure_logging ---------------------------------------------------------------


def test_text_is_the_default_and_reads_as_one_line_per_event(capsys):
    configure_logging()
    logging.getLogger("service.watcher").info("%s: connected", "support/INBOX")
    logging.getLogger("service.watcher").debug("not at INFO")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert TEXT_LINE.match(lines[0]) and lines[0].endswith("INFO    service.watcher: support/INBOX: connected")


def test_json_lines_each_parse_with_time_level_logger_and_message(capsys):
    configure_logging("DEBUG", "json")
    log = logging.getLogger("service.pipeline")
    log.debug("batch of %d", 3)
    log.warning("quoted \"text\" and ünïcode, and a\nnewline")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # a newline in a message or a traceback stays inside its line
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", entry["time"])
        assert entry["logger"] == "service.pipeline"
    assert [e["level"] for e in entries] == ["debug", "warning", "error"]
    assert entries[0]["message"] == "batch of 3"
    assert entries[1]["message"] == "quoted \"text\" and ünïcode, and a\nnewline"
    assert "ValueError: boom" in entries[2]["exception"]


@pytest.mark.parametrize("level, shown", [("DEBUG", 4), ("INFO", 3), ("WARNING", 2), ("ERROR", 1)])
def test_level_filters(capsys, level, shown):
    configure_logging(level, "json")
    log = logging.getLogger("service.daemon")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert len(capsys.readouterr().err.splitlines()) == shown


def test_imapclient_debug_logging_stays_off_even_at_debug(capsys):
    """imapclient logs every command at DEBUG, LOGIN and message bodies included."""
    configure_logging("DEBUG", "text")
    logging.getLogger("imapclient.imaplib").debug("> b'A001 LOGIN support %s'", MAILBOX_PASSWORD)
    logging.getLogger("imapclient.imapclient").debug("< BODY[] {42} dear support, ...")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_from_messages_arguments_and_exceptions(capsys, fmt):
    configure_logging("DEBUG", fmt, secrets=SECRETS)
    log = logging.getLogger("service.mailbox.imap")
    log.error("login failed with password %s", MAILBOX_PASSWORD)
    log.warning("SMTP: 535 auth failed for %r", {"password": SMTP_PASSWORD})
    log.info(f"Authorization: Bearer {ADMIN_TOKEN} / {VIEWER_TOKEN}")
    log.info("AUTHENTICATE XOAUTH2 user=support\x01auth=Bearer %s\x01\x01", XOAUTH2_TOKEN)
    try:
        raise ConnectionError(f"server said: bad credentials {MAILBOX_PASSWORD}")
    except ConnectionError as exc:
        log.error("%s: %s", "support/INBOX", exc)
    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in err
    assert err.count(REDACTED) >= 6
    assert "login failed with password [redacted]" in err


def test_traceback_text_is_redacted_too(capsys):
    """A library exception's message can carry a secret; the formatted traceback must not show it."""
    configure_logging("DEBUG", "json", secrets=SECRETS)
    try:
        raise RuntimeError(f"LOGIN support {MAILBOX_PASSWORD} rejected")
    except RuntimeError:
        logging.getLogger("service.watcher").exception("support/INBOX: unexpected error")
    err = capsys.readouterr().err
    assert "unexpected error" in err
    assert MAILBOX_PASSWORD not in err


def test_short_values_are_not_treated_as_secrets(capsys):
    """Redacting a 1-3 character secret would shred every log line; settings refuse such tokens anyway."""
    configure_logging("INFO", "text", secrets=["abc"])
    logging.getLogger("x").info("abc def")
    assert "abc def" in capsys.readouterr().err


# -- the real command line -----------------------------------------------------------


def _run_until(args: list[str], pattern: str, timeout: float = 90) -> tuple[int, str]:
    """Start `warningshot ARGS`, wait until its log matches ``pattern`` (e.g. a retry was
    logged), SIGTERM it and return (exit code, stdout + stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{SUPPORT}:{REPO}"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not re.search(pattern, "".join(lines), re.I):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(10)
    return proc.returncode, "".join(lines)


def _secret_config(tmp_path, mailbox: str, extra: str = "") -> str:
    path = tmp_path / "warningshot.toml"
    path.write_text(
        f"""{mailbox}
[model]
factory = "marker_classifier:build"
[store]
url = "sqlite:///{tmp_path / 'store.db'}"
[daemon]
backoff_initial_seconds = 0.2
backoff_max_seconds = 0.5
[api]
enabled = true
port = {free_port()}
admin_tokens = ["{ADMIN_TOKEN}"]
viewer_tokens = ["{VIEWER_TOKEN}"]
[smtp]
host = "localhost"
username = "support"
password = "{SMTP_PASSWORD}"
{extra}"""
    )
    return str(path)


def test_daemon_against_an_unreachable_server_logs_a_clear_error_and_no_secret(tmp_path):
    port = free_port()  # nothing listens there
    config = _secret_config(tmp_path, f"""
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "support"
password = "{MAILBOX_PASSWORD}"
""")
    code, log = _run_until(["-c", config, "--log-level", "DEBUG", "run"], r"reconnecting in .*\n(.|\n)*reconnecting in")
    assert code == 0, log
    for secret in SECRETS:
        assert secret not in log
    # Which mailbox, which server, what went wrong, and that it retries.
    assert re.search(rf"support.*127\.0\.0\.1:{port}.*(refused|cannot connect|unreachable)", log, re.I | re.S), log
    assert "reconnecting in" in log


def test_daemon_with_xoauth2_never_logs_the_token(tmp_path, dovecot):
    token_file = tmp_path / "token"
    token_file.write_text(XOAUTH2_TOKEN + "\n")
    config = _secret_config(tmp_path, f"""
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {dovecot.port}
security = "plain"
username = "support"
auth = "xoauth2"
oauth2_token_file = "{token_file}"
""")
    # This Dovecot has no OAuth2 passdb: the token is sent and refused.
    code, log = _run_until(["-c", config, "--log-level", "DEBUG", "--log-format", "json", "run"], "reconnecting in")
    assert code == 0, log
    assert XOAUTH2_TOKEN not in log and "ya29." not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e["level"] == "error" and "support" in e["message"] for e in lines), log


BODY_MARKER = "zebra-quokka-7781"


def test_mail_bodies_and_evidence_are_not_logged(tmp_path, dovecot, daemon_process):
    deliver(dovecot, make_mail(1, body=f"Hello,\n[[abusive]] you {BODY_MARKER} people are useless.\n"))
    deliver(dovecot, make_mail(2, body=f"Poison {BODY_MARKER}-crash [[crash]] text\n"))
    config = write_config(tmp_path, dovecot, '[logging]\nlevel = "DEBUG"\n')
    process = daemon_process(config)
    wait_for(lambda: any("Abusive" in f for f in flags_by_message_id(dovecot).values()), what="the abusive tag")
    wait_for(lambda: any("WarningShot/Error" in f for f in flags_by_message_id(dovecot).values()),
             what="the poison message quarantined")
    assert process.terminate() == 0
    log = process.log()
    assert "DEBUG" in log  # the test looked at the most talkative level
    assert BODY_MARKER not in log, [line for line in log.splitlines() if BODY_MARKER in line]


def test_an_oauth2_access_token_is_redacted_from_the_moment_it_is_fetched(tmp_path, capsys):
    from service.mailbox.auth import oauth2_token
    from service.settings import MailboxSettings

    token = "ya29.a0-fresh-access-token-7f3k"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    configure_logging("INFO", "text")
    mailbox = MailboxSettings(name="gmail", host="imap.gmail.com", username="support@example.com",
                              auth="xoauth2", oauth2_token_file=token_file)
    assert oauth2_token(mailbox) == token
    logging.getLogger("imapclient").warning("AUTHENTICATE failed for user=x auth=Bearer %s", token)
    logging.getLogger("service.watcher").error("gmail/INBOX: server said: %s", f"invalid token {token}")
    err = capsys.readouterr().err
    assert token not in err and err.count(REDACTED) == 2
