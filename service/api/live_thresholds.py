"""The thresholds the pipeline applies: model ← settings ← overrides stored by the API.

The pipeline asks for thresholds once per message, so the answer is cached.
A change made through the API in the same process invalidates the cache at
once (a version counter); a change made by another process (``warningshot
api`` next to ``warningshot run``) is seen within ``ttl`` seconds. This module
imports no web framework: the daemon uses it with the API switched off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from classifiers.interface import Thresholds
from service.api import repository
from service.errors import StoreError
from service.store import Store

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 1.0


class LiveThresholds:
    """A ``thresholds`` callable for :class:`service.pipeline.Pipeline`."""

    def __init__(self, store: Store, base: Callable[[], Thresholds], *, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.store = store
        self.base = base
        self.ttl = ttl
        self._lock = threading.Lock()
        self._version = 0
        self._cached: tuple[int, float, Thresholds] | None = None
        self._stored = Thresholds({}, {})

    def invalidate(self) -> None:
        """Forget the cached value; call after writing overrides to the store."""
        with self._lock:
            self._version += 1

    def __call__(self) -> Thresholds:
        now = time.monotonic()
        cached = self._cached
        if cached is not None and cached[0] == self._version and now < cached[1]:
            return cached[2]
        with self._lock:
            version = self._version
        try:
            self._stored = repository.stored_thresholds(self.store).thresholds
        except StoreError as exc:
            # The store is busy or gone for a moment: keep deciding with the
            # last overrides read rather than stall or drop the message.
            log.warning("cannot read stored thresholds (%s); using the last ones read", exc.__class__.__name__)
        value = self.base().merged(self._stored)
        self._cached = (version, now + self.ttl, value)
        return value
