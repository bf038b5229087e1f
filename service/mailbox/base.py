"""What the pipeline needs from a mailbox folder."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    raw: bytes
    flags: tuple[str, ...]


class FolderSession(Protocol):
    """One open connection with one folder selected.

    Effects are idempotent: adding a keyword twice, or copying a message that
    the target folder already holds, changes nothing the second time.
    """

    mailbox: str
    folder: str
    uidvalidity: int

    def uids_after(self, uid: int) -> list[int]:
        """UIDs above ``uid`` in ascending order."""
        ...

    def contains(self, uid: int) -> bool: ...

    def fetch(self, uids: Sequence[int]) -> dict[int, FetchedMessage]:
        """Full messages, fetched without setting \\Seen; vanished UIDs are absent."""
        ...

    def add_keywords(self, uids: Sequence[int], keywords: Sequence[str]) -> None: ...

    def add_gmail_labels(self, uid: int, labels: Sequence[str]) -> None:
        """Set Gmail labels; a no-op on servers without X-GM-EXT-1."""
        ...

    def copy_to(self, uid: int, folder: str, message_id: str | None) -> None:
        """Copy unless ``folder`` already holds a message with this Message-ID."""
        ...

    def move_to(self, uid: int, folder: str) -> None: ...

    def append(self, folder: str, raw: bytes, flags: Sequence[str]) -> None:
        """Store ``raw`` in ``folder`` (created when missing) with ``flags``, e.g. a draft with \\Draft."""
        ...

    def has_message_id(self, folder: str, message_id: str) -> bool:
        """Whether ``folder`` holds a message with this Message-ID; False when the folder does not exist."""
        ...

    def delete_message_id(self, folder: str, message_id: str) -> int:
        """Remove the messages with this Message-ID from ``folder``; how many were removed (0 is fine)."""
        ...

    def wait_for_changes(self, stop: threading.Event) -> None:
        """Block until new mail may have arrived, the renewal interval passed, or ``stop`` is set."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FlagSighting:
    """One message's flags as the correction sync saw them; ``header`` only when asked for."""

    uid: int
    flags: frozenset[str]
    header: bytes | None = None


@dataclass(frozen=True, slots=True)
class FolderChanges:
    """What changed in a folder since the last look.

    ``highest_modseq`` is None when the server has no CONDSTORE; then
    ``sightings`` holds the newest messages, not only the changed ones.
    """

    folder: str
    uidvalidity: int
    highest_modseq: int | None
    sightings: tuple[FlagSighting, ...]


class FlagReader(Protocol):
    """One connection that reads flag changes across folders and fixes keywords (corrections)."""

    mailbox: str

    def changes(self, folder: str, uidvalidity: int | None, modseq: int | None, limit: int) -> FolderChanges | None:
        """Changes since ``modseq`` (when ``uidvalidity`` still holds), else the newest ``limit``
        messages; None when the folder does not exist."""
        ...

    def headers(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        """The header section of each message, fetched without setting \\Seen."""
        ...

    def fetch(self, folder: str, uid: int) -> bytes | None: ...

    def set_keywords(self, folder: str, uid: int, add: Sequence[str], remove: Sequence[str]) -> None: ...

    def close(self) -> None: ...
