"""The IMAP implementation of FolderSession, on imapclient.

imapclient, socket and ssl errors are translated here and nowhere else:
connection trouble becomes MailboxConnectionError (the watcher reconnects with
backoff), refused credentials MailboxAuthError.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from service.errors import MailboxAuthError, MailboxConnectionError, MailboxError
from service.mailbox.auth import oauth2_token
from service.mailbox.base import FetchedMessage
from service.settings import MailboxSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean the connection is unusable; the watcher reconnects.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # socket.error, ssl.SSLError, ConnectionResetError, timeouts
    EOFError,
    IMAPClientAbortError,
    imaplib.IMAP4.abort,
)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Map the errors of the libraries underneath onto WarningShot's tree."""
    try:
        yield
    except MailboxError:
        raise
    except LoginError as exc:
        raise MailboxAuthError(f"{what}: login refused: {exc}") from exc
    except _CONNECTION_ERRORS as exc:
        raise MailboxConnectionError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"{what}: {exc}") from exc


def _tls_context(settings: MailboxSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(settings: MailboxSettings) -> IMAPClient:
    """Open an authenticated connection (TLS, STARTTLS or plain on localhost)."""
    what = f"{settings.name} ({settings.host}:{settings.effective_port})"
    with translated(what):
        client = IMAPClient(
            settings.host,
            port=settings.effective_port,
            ssl=settings.security == "tls",
            ssl_context=_tls_context(settings) if settings.security == "tls" else None,
            timeout=settings.timeout_seconds,
        )
        try:
            if settings.security == "starttls":
                client.starttls(_tls_context(settings))
            if settings.auth == "xoauth2":
                client.oauth2_login(settings.username, oauth2_token(settings))
            else:
                client.login(settings.username, settings.password.get_secret_value())
        except BaseException:
            _shutdown_quietly(client)
            raise
    return client


def _shutdown_quietly(client: IMAPClient) -> None:
    # The connection is being discarded anyway.
    with contextlib.suppress(Exception):
        client.shutdown()


class ImapFolderSession:
    """One IMAP connection with one folder selected (read-write)."""

    def __init__(self, settings: MailboxSettings, folder: str, client: IMAPClient | None = None) -> None:
        self.settings = settings
        self.mailbox = settings.name
        self.folder = folder
        self._what = f"{settings.name}/{folder}"
        self.client = client or connect(settings)
        try:
            with translated(self._what):
                info = self.client.select_folder(folder)
                self.uidvalidity = int(info[b"UIDVALIDITY"])
                self._capabilities = {c.upper() for c in self.client.capabilities()}
        except BaseException:
            _shutdown_quietly(self.client)
            raise
        self.can_idle = settings.idle and b"IDLE" in self._capabilities
        self.can_move = b"MOVE" in self._capabilities
        self.is_gmail = b"X-GM-EXT-1" in self._capabilities
        self._known_folders: set[str] = set()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with translated(f"{self._what}: {what}"):
            return fn()

    def uids_after(self, uid: int) -> list[int]:
        # "N:*" always matches the highest UID even when it is below N (RFC 3501
        # 6.4.8), so the result is filtered.
        found = self._call("search", lambda: self.client.search(["UID", f"{uid + 1}:*"]))
        return sorted(u for u in found if u > uid)

    def contains(self, uid: int) -> bool:
        return uid in self._call("search", lambda: self.client.search(["UID", str(uid)]))

    def fetch(self, uids: Sequence[int]) -> dict[int, FetchedMessage]:
        if not uids:
            return {}
        # BODY.PEEK[] leaves \Seen alone: agents must still see the mail as new.
        data = self._call("fetch", lambda: self.client.fetch(list(uids), ["BODY.PEEK[]", "FLAGS"]))
        out: dict[int, FetchedMessage] = {}
        for uid, item in data.items():
            raw = item.get(b"BODY[]")
            if raw is None:
                continue
            flags = tuple(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in item.get(b"FLAGS", ()))
            out[int(uid)] = FetchedMessage(uid=int(uid), raw=bytes(raw), flags=flags)
        return out

    def add_keywords(self, uids: Sequence[int], keywords: Sequence[str]) -> None:
        if keywords and uids:
            self._call("store", lambda: self.client.add_flags(list(uids), list(keywords), silent=True))

    def add_gmail_labels(self, uid: int, labels: Sequence[str]) -> None:
        if labels and self.is_gmail:
            self._call("gmail labels", lambda: self.client.add_gmail_labels([uid], list(labels), silent=True))

    def _ensure_folder(self, folder: str) -> None:
        if folder in self._known_folders:
            return
        if not self._call("folder_exists", lambda: self.client.folder_exists(folder)):
            try:
                self._call("create", lambda: self.client.create_folder(folder))
            except MailboxError:
                # Another watcher may have created it in the meantime.
                if not self._call("folder_exists", lambda: self.client.folder_exists(folder)):
                    raise
            try:
                self._call("subscribe", lambda: self.client.subscribe_folder(folder))
            except MailboxError:
                log.debug("%s: could not subscribe to %s", self._what, folder)
        self._known_folders.add(folder)

    def _folder_has_message_id(self, folder: str, message_id: str) -> bool:
        def look() -> bool:
            self.client.select_folder(folder, readonly=True)
            try:
                return bool(self.client.search(["HEADER", "Message-ID", message_id]))
            finally:
                self.client.select_folder(self.folder)

        return self._call("search target", look)

    def copy_to(self, uid: int, folder: str, message_id: str | None) -> None:
        self._ensure_folder(folder)
        if message_id and self._folder_has_message_id(folder, message_id):
            return
        self._call("copy", lambda: self.client.copy([uid], folder))

    def move_to(self, uid: int, folder: str) -> None:
        self._ensure_folder(folder)
        if self.can_move:
            self._call("move", lambda: self.client.move([uid], folder))
            return

        def copy_delete_expunge() -> None:
            self.client.copy([uid], folder)
            self.client.add_flags([uid], [b"\\Deleted"], silent=True)
            # UID EXPUNGE removes only this message, not others an agent deleted.
            if b"UIDPLUS" in self._capabilities:
                self.client.uid_expunge([uid])
            else:
                self.client.expunge()

        self._call("move (copy+expunge)", copy_delete_expunge)

    def append(self, folder: str, raw: bytes, flags: Sequence[str]) -> None:
        self._ensure_folder(folder)
        self._call("append", lambda: self.client.append(folder, raw, flags=[f.encode() for f in flags]))

    def has_message_id(self, folder: str, message_id: str) -> bool:
        known = folder in self._known_folders
        if not known and not self._call("folder_exists", lambda: self.client.folder_exists(folder)):
            return False
        return self._folder_has_message_id(folder, message_id)

    def delete_message_id(self, folder: str, message_id: str) -> int:
        if not self._call("folder_exists", lambda: self.client.folder_exists(folder)):
            return 0

        def delete() -> int:
            self.client.select_folder(folder)
            try:
                uids = self.client.search(["HEADER", "Message-ID", message_id])
                if uids:
                    self.client.add_flags(uids, [b"\\Deleted"], silent=True)
                    # UID EXPUNGE leaves alone what an agent marked deleted in the same folder.
                    if b"UIDPLUS" in self._capabilities:
                        self.client.uid_expunge(uids)
                    else:
                        self.client.expunge()
                return len(uids)
            finally:
                self.client.select_folder(self.folder)

        return self._call("delete by Message-ID", delete)

    def wait_for_changes(self, stop: threading.Event) -> None:
        if not self.can_idle:
            stop.wait(self.settings.poll_interval_seconds)
            if not stop.is_set():
                self._call("noop", self.client.noop)
            return

        def idle() -> None:
            self.client.idle()
            try:
                # Re-issued before the server's 29-minute limit (RFC 2177).
                deadline = time.monotonic() + self.settings.idle_renew_seconds
                while not stop.is_set() and time.monotonic() < deadline:
                    started = time.monotonic()
                    responses: list[Any] = self.client.idle_check(timeout=1.0)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        return
                    if not responses and time.monotonic() - started < 0.5:
                        # idle_check swallows EOF and returns at once; ending
                        # IDLE surfaces the dropped connection as an error.
                        return
                log.debug("%s: renewing IDLE", self._what)
            finally:
                self.client.idle_done()

        self._call("idle", idle)

    def close(self) -> None:
        try:
            with translated(self._what):
                self.client.logout()
        except MailboxError:
            _shutdown_quietly(self.client)


def open_folder(settings: MailboxSettings, folder: str) -> ImapFolderSession:
    return ImapFolderSession(settings, folder)


__all__ = ["ImapFolderSession", "connect", "open_folder", "translated"]
