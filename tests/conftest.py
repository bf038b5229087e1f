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


# -- the admin API (tests/test_api_*.py) ---------------------------------------

ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"


class ApiHandle:
    """The admin API served by a real uvicorn in a thread, on a port the OS picked, over one store."""

    def __init__(self, store_url: str, api: dict, extra: dict, classifier: object, daemon_state: object) -> None:
        from service.settings import Settings
        from service.store import Store

        self.settings = Settings(
            api={"admin_tokens": [ADMIN_TOKEN], "viewer_tokens": [VIEWER_TOKEN], **api},
            **{**extra, "store": {"url": store_url, **extra.get("store", {})}},  # type: ignore[dict-item]
        )
        self.store = Store(store_url, store_bodies=self.settings.store.store_bodies)
        self.store.migrate()
        self.classifier, self.daemon_state = classifier, daemon_state
        self._uids = iter(range(1, 10**9))
        self.server = None
        self.start()

    def start(self) -> None:
        import httpx

        from service.api.app import create_app
        from service.api.server import ApiServer

        self.app = create_app(self.settings, self.store, self.classifier, self.daemon_state)
        self.thresholds = self.app.state.ctx.thresholds
        self.server = ApiServer(self.app, "127.0.0.1", 0, access_log=False).start()
        self.url = self.server.url
        self.admin = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        self.viewer = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}, timeout=30)
        self.anonymous = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            for client in (self.admin, self.viewer, self.anonymous):
                client.close()
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        """A new server, app and store object over the same database file."""
        from service.store import Store

        self.stop()
        self.store.close()
        self.store = Store(self.settings.store.url, store_bodies=self.settings.store.store_bodies)
        self.start()

    def seed(self, **fields: object) -> int:
        """Insert a handled message as the pipeline would have stored it; return its id."""
        from service.store import MessageRecord

        uid = next(self._uids)
        values = {
            "mailbox": "support", "folder": "INBOX", "uidvalidity": 1, "uid": uid,
            "message_key": f"<seed-{uid}@example.org>", "message_id": f"<seed-{uid}@example.org>",
            "sender": f"customer{uid}@example.org", "subject": f"Ticket {uid}", "language": "en",
            "scores": {"abusive": 0.02, "extortion": 0.02, "legal_threat": 0.02}, "labels": [],
            "evidence": {}, "action": {}, "state": "done", "attempts": 1,
            **fields,
        }
        with self.store.session() as s:
            record = MessageRecord(**values)
            s.add(record)
            s.flush()
            return record.id

    def close(self) -> None:
        self.stop()
        self.store.close()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[Callable[..., ApiHandle]]:
    """Start API servers: ``api_server(api={...settings.api...}, classifier=..., daemon_state=...)``."""
    handles: list[ApiHandle] = []

    def start(*, api: dict | None = None, classifier: object = None, daemon_state: object = None,
              store_url: str | None = None, **extra: object) -> ApiHandle:
        from marker_classifier import MarkerClassifier

        handle = ApiHandle(
            store_url or f"sqlite:///{tmp_path / f'api-{len(handles)}.db'}", api or {}, extra,
            MarkerClassifier() if classifier is None else classifier, daemon_state,
        )
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.close()


@pytest.fixture
def api(api_server: Callable[..., ApiHandle]) -> ApiHandle:
    return api_server()


# -- the playbook: a real SMTP server (aiosmtpd) that collects what it receives ------------------


class ReceivedMail:
    """One message as the SMTP server got it: envelope and raw bytes."""

    def __init__(self, mail_from: str, rcpt_tos: tuple[str, ...], data: bytes) -> None:
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data

    def message(self):  # type: ignore[no-untyped-def]
        from email import policy
        from email.parser import BytesParser

        return BytesParser(policy=policy.default).parsebytes(self.data)


class SmtpCatcher:
    """aiosmtpd handler: keeps every accepted message; ``refuse`` answers that many DATA with 451."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.refuse = 0
        self.host = "127.0.0.1"
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        data = envelope.original_content or envelope.content
        self.received.append(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(data)))
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_server() -> Iterator[SmtpCatcher]:
    from aiosmtpd.controller import Controller

    from service.local_dovecot import free_port

    handler = SmtpCatcher()
    handler.port = free_port()
    controller = Controller(handler, hostname=handler.host, port=handler.port)
    controller.start()
    yield handler
    controller.stop()


def shipped_model_dir() -> Path:
    """The shipped model's directory, or skip the test when it has not been trained."""
    from classifiers.model import MANIFEST_FILE, default_model_dir

    path = default_model_dir()
    if not (path / MANIFEST_FILE).is_file():
        pytest.skip(f"no shipped model in {path}; train one with `warningshot train` (see models/README.md)")
    return path


@pytest.fixture(scope="session")
def shipped_model():
    """The shipped model as the daemon loads it by default (precision auto), once for every test that needs it."""
    from classifiers.model import WarningShotModel

    return WarningShotModel.load(shipped_model_dir(), precision="auto")
