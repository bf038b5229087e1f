"""Shared fixtures: a real Dovecot per test, config files, the daemon as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

REPO = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))

from service.local_dovecot import Dovecot  # noqa: E402

PASSWORD = "support-pass"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(users={"support": PASSWORD, "billing": "billing-pass"})
    server.start()
    yield server
    server.cleanup()


def imap(server: Dovecot, user: str = "support", password: str = PASSWORD) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    client.login(user, password)
    return client


def deliver(server: Dovecot, raw: bytes, folder: str = "INBOX", user: str = "support", password: str = PASSWORD) -> None:
    client = imap(server, user, password)
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        client.append(folder, raw)
    finally:
        client.logout()


def make_mail(n: int, body: str = "Hello, my licence key does not work.", subject: str | None = None,
              message_id: bool = True) -> bytes:
    headers = [
        f"From: Customer {n} <customer{n}@example.org>",
        "To: support@example.com",
        f"Subject: {subject or f'Ticket {n}'}",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if message_id:
        headers.append(f"Message-ID: <ticket-{n}@example.org>")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


def flags_by_message_id(server: Dovecot, folder: str = "INBOX") -> dict[str, set[str]]:
    """Message-ID -> keywords and flags, for everything in ``folder``."""
    client = imap(server)
    try:
        if not client.folder_exists(folder):
            return {}
        client.select_folder(folder, readonly=True)
        data = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        out = {}
        for uid, item in data.items():
            header = item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().strip()
            key = header.partition(":")[2].strip() or f"uid:{uid}"
            out[key] = {f.decode() if isinstance(f, bytes) else str(f) for f in item[b"FLAGS"]}
        return out
    finally:
        client.logout()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def write_config(tmp_path: Path, server: Dovecot, extra: str = "", *, folders: str = '["INBOX"]',
                 mailbox_extra: str = "") -> Path:
    path = tmp_path / "warningshot.toml"
    path.write_text(
        f"""
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {server.port}
security = "plain"
username = "support"
password = "{PASSWORD}"
folders = {folders}
poll_interval_seconds = 0.5
{mailbox_extra}

[model]
factory = "marker_classifier:build"

[store]
url = "sqlite:///{tmp_path / 'store.db'}"

[daemon]
backoff_initial_seconds = 0.2
backoff_max_seconds = 1.0
batch_size = 8
{extra}
"""
    )
    return path


class DaemonProcess:
    """``warningshot run`` as a real child process, with its log kept in a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / "daemon.log"
        self.env = {**os.environ, "PYTHONPATH": f"{SUPPORT}:{REPO}", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "-c", str(self.config), "run"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def daemon_process() -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        process = DaemonProcess(config, env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
