"""The IMAP implementation of FlagReader: the correction sync's own connection.

With CONDSTORE (RFC 7162) a folder is asked only for what changed since the
MODSEQ it reported last time, so a check of a large mailbox costs one short
FETCH. Without it, the newest ``limit`` messages are read each time: a
bounded sync that misses changes only on older mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from imapclient import IMAPClient

from service.mailbox.base import FlagSighting, FolderChanges
from service.mailbox.imap import _shutdown_quietly, connect, translated
from service.settings import MailboxSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

_HEADER = "BODY.PEEK[HEADER]"


def _flag_names(item: dict[bytes, Any]) -> frozenset[str]:
    return frozenset(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in item.get(b"FLAGS", ()))


class ImapFlagReader:
    def __init__(
        self, settings: MailboxSettings, *, use_condstore: bool = True, client: IMAPClient | None = None
    ) -> None:
        self.mailbox = settings.name
        self.client = client or connect(settings)
        try:
            with translated(self.mailbox):
                capabilities = {c.upper() for c in self.client.capabilities()}
                self.condstore = use_condstore and b"CONDSTORE" in capabilities
                if self.condstore and b"ENABLE" in capabilities:
                    # Makes SELECT report HIGHESTMODSEQ (RFC 7162 3.1).
                    self.client.enable("CONDSTORE")
        except BaseException:
            _shutdown_quietly(self.client)
            raise
        self._selected: tuple[str, bool] | None = None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with translated(f"{self.mailbox}: {what}"):
            return fn()

    def _select(self, folder: str, *, readonly: bool = True) -> dict[bytes, Any] | None:
        def select() -> dict[bytes, Any] | None:
            if not self.client.folder_exists(folder):
                return None
            info = self.client.select_folder(folder, readonly=readonly)
            self._selected = (folder, readonly)
            return info

        return self._call(f"select {folder}", select)

    def changes(self, folder: str, uidvalidity: int | None, modseq: int | None, limit: int) -> FolderChanges | None:
        info = self._select(folder)
        if info is None:
            return None
        current_validity = int(info[b"UIDVALIDITY"])
        highest = int(info[b"HIGHESTMODSEQ"]) if self.condstore and b"HIGHESTMODSEQ" in info else None
        if highest is not None and modseq is not None and uidvalidity == current_validity:
            if highest == modseq:
                return FolderChanges(folder, current_validity, highest, ())
            def changed() -> dict[int, dict[bytes, Any]]:
                # SEARCH MODSEQ rather than FETCH 1:* (CHANGEDSINCE): imapclient's fetch
                # keeps only the UIDs it was given, and cannot expand a range.
                uids = self.client.search(["MODSEQ", str(modseq + 1)])
                return self.client.fetch(uids, ["FLAGS"]) if uids else {}

            data = self._call(f"fetch changes in {folder}", changed)
        else:
            # First look, a recreated folder, or no CONDSTORE: the newest messages.
            def newest() -> dict[int, dict[bytes, Any]]:
                uids = sorted(self.client.search(["ALL"]))[-limit:]
                return self.client.fetch(uids, ["FLAGS"]) if uids else {}

            data = self._call(f"fetch flags in {folder}", newest)
        sightings = tuple(FlagSighting(int(uid), _flag_names(item)) for uid, item in sorted(data.items()))
        return FolderChanges(folder, current_validity, highest, sightings)

    def headers(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        if not uids:
            return {}
        if self._selected != (folder, True) and self._select(folder) is None:
            return {}
        data = self._call(f"fetch headers in {folder}", lambda: self.client.fetch(list(uids), [_HEADER]))
        return {int(uid): bytes(item[b"BODY[HEADER]"]) for uid, item in data.items() if b"BODY[HEADER]" in item}

    def fetch(self, folder: str, uid: int) -> bytes | None:
        if self._selected != (folder, True) and self._select(folder) is None:
            return None
        data = self._call(f"fetch from {folder}", lambda: self.client.fetch([uid], ["BODY.PEEK[]"]))
        item = data.get(uid)
        return bytes(item[b"BODY[]"]) if item and b"BODY[]" in item else None

    def set_keywords(self, folder: str, uid: int, add: Sequence[str], remove: Sequence[str]) -> None:
        if not (add or remove):
            return
        if self._selected != (folder, False) and self._select(folder, readonly=False) is None:
            return

        def store() -> None:
            if add:
                self.client.add_flags([uid], list(add), silent=True)
            if remove:
                self.client.remove_flags([uid], list(remove), silent=True)

        self._call(f"store keywords in {folder}", store)

    def close(self) -> None:
        try:
            with translated(self.mailbox):
                self.client.logout()
        except Exception:  # noqa: BLE001 - the connection is being discarded anyway
            _shutdown_quietly(self.client)


def open_flag_reader(settings: MailboxSettings, use_condstore: bool = True) -> ImapFlagReader:
    return ImapFlagReader(settings, use_condstore=use_condstore)
