"""Recent scores kept in memory as numpy columns, so a preview re-decides 100,000 messages in milliseconds.

Reading and JSON-decoding every message of a 30-day window from the store
takes seconds; the scores of a message never change once stored, so the
index loads the window once (in the background when the server starts) and
then, before each use, reads only the rows updated since its watermark.

The watermark trails the newest ``updated_at`` seen by ``OVERLAP``: a writer
stamps ``updated_at`` before it commits, and may wait for the SQLite write
lock (busy_timeout, 30 s) in between, so a row can become visible with a
stamp older than rows seen before it. Re-reading the last minute costs a few
rows and catches those.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from classifiers.interface import LABELS
from service.api import repository
from service.errors import StoreError
from service.store import Store

log = logging.getLogger(__name__)

WINDOW = timedelta(days=366)
OVERLAP = timedelta(seconds=60)
UNDETERMINED = "und"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Scored messages received since a time: one row per message, newest anywhere."""

    ids: np.ndarray  # int64
    received: np.ndarray  # float64, POSIX seconds
    language: np.ndarray  # int32 index into ``languages``
    scores: np.ndarray  # float64, shape (n, len(LABELS))
    languages: tuple[str, ...]


class ScoreIndex:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._n = 0
        self._pos: dict[int, int] = {}
        self._ids = np.zeros(0, np.int64)
        self._received = np.zeros(0, np.float64)
        self._language = np.zeros(0, np.int32)
        self._scores = np.zeros((0, len(LABELS)), np.float64)
        self._valid = np.zeros(0, bool)
        self._languages: list[str] = []
        self._codes: dict[str, int] = {}
        self._watermark: datetime | None = None

    def warm_in_background(self) -> None:
        def warm() -> None:
            try:
                self.refresh()
            except StoreError as exc:
                log.warning("score index not loaded at start (%s); the first preview will load it",
                            exc.__class__.__name__)

        threading.Thread(target=warm, name="api:score-index", daemon=True).start()

    def refresh(self) -> None:
        """Catch up with the store (the first call loads the whole window)."""
        with self._lock:
            now = datetime.now(UTC)
            if self._watermark is None:
                rows = repository.recent_scores(self.store, received_since=now - WINDOW)
            else:
                rows = repository.scores_updated_since(self.store, self._watermark - OVERLAP)
            newest = self._watermark
            for record_id, received_at, updated_at, language, scores in rows:
                self._put(record_id, received_at, language, scores)
                stamp = repository.as_utc(updated_at)
                newest = stamp if newest is None or stamp > newest else newest
            self._watermark = newest
            self._compact(now - WINDOW)

    def snapshot(self, since: datetime) -> Snapshot:
        self.refresh()
        with self._lock:
            n = self._n
            keep = self._valid[:n] & (self._received[:n] >= since.timestamp())
            return Snapshot(
                ids=self._ids[:n][keep], received=self._received[:n][keep], language=self._language[:n][keep],
                scores=self._scores[:n][keep], languages=tuple(self._languages),
            )

    # -- storage -------------------------------------------------------------------

    def _put(self, record_id: int, received_at: datetime, language: str | None, scores: Any) -> None:
        i = self._pos.get(record_id)
        if i is None:
            i = self._n
            if i == len(self._ids):
                self._resize(max(1024, 2 * i))
            self._pos[record_id] = i
            self._ids[i] = record_id
            self._n += 1
        self._received[i] = repository.as_utc(received_at).timestamp()
        self._language[i] = self._code(language or UNDETERMINED)
        self._valid[i] = False
        if isinstance(scores, dict):
            try:
                # A missing label scores 0, as in service.decision.decide.
                self._scores[i] = [float(scores.get(label, 0.0)) for label in LABELS]
                self._valid[i] = True
            except (TypeError, ValueError):
                pass  # a score the store should never hold; left out of previews

    def _code(self, language: str) -> int:
        code = self._codes.get(language)
        if code is None:
            code = self._codes[language] = len(self._languages)
            self._languages.append(language)
        return code

    def _resize(self, capacity: int) -> None:
        n = self._n
        for name in ("_ids", "_received", "_language", "_valid"):
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)
        scores = np.zeros((capacity, len(LABELS)), np.float64)
        scores[:n] = self._scores[:n]
        self._scores = scores

    def _compact(self, oldest: datetime) -> None:
        # Messages that left the window are dropped once they are a quarter of the index.
        n = self._n
        keep = self._received[:n] >= oldest.timestamp()
        if n < 1024 or keep.sum() > 0.75 * n:
            return
        for name in ("_ids", "_received", "_language", "_valid", "_scores"):
            setattr(self, name, getattr(self, name)[:n][keep].copy())
        self._n = int(keep.sum())
        self._pos = {int(record_id): i for i, record_id in enumerate(self._ids[: self._n])}
