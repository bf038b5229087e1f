"""One thread per watched folder: connect, catch up, wait for mail, reconnect."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import MailboxAuthError, MailboxError, StoreError
from service.mailbox.base import FolderSession
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.settings import MailboxSettings

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Capped exponential backoff with jitter, so many watchers do not reconnect in step."""

    initial: float
    maximum: float
    current: float = 0.0

    def reset(self) -> None:
        self.current = 0.0

    def next_delay(self) -> float:
        self.current = self.initial if self.current == 0.0 else min(self.current * 2, self.maximum)
        return self.current * random.uniform(0.8, 1.0)


class FolderWatcher:
    """Keeps one folder processed for as long as ``stop`` is not set.

    Every error is logged and followed by a reconnect after a backoff: a
    watcher never dies on server trouble, only when asked to stop.
    """

    def __init__(
        self,
        settings: MailboxSettings,
        folder: str,
        pipeline: Pipeline,
        stop: threading.Event,
        *,
        opener: Callable[[MailboxSettings, str], FolderSession],
        backoff: Backoff,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.pipeline = pipeline
        self.stop = stop
        self.opener = opener
        self.backoff = backoff
        self.state = "starting"
        self.reconnects = 0
        self.last_error: str | None = None
        self.name = f"{settings.name}/{folder}"
        self.metrics = metrics or pipeline.metrics
        self._connected = self.metrics.connected.labels(settings.name, folder)

    def run(self) -> None:
        while not self.stop.is_set():
            session: FolderSession | None = None
            try:
                session = self.opener(self.settings, self.folder)
                self.state = "connected"
                self._connected.set(1)
                self.last_error = None
                self.backoff.reset()
                log.info("%s: connected", self.name)
                self.pipeline.settle(session)
                while not self.stop.is_set():
                    if self.pipeline.handle_new(session, self.stop):
                        # Mail that arrived while we worked was announced in
                        # replies to our own commands, not to a later IDLE:
                        # look again before waiting.
                        continue
                    session.wait_for_changes(self.stop)
            except MailboxAuthError as exc:
                self._failed(exc, logging.ERROR)
            except (MailboxError, StoreError) as exc:
                self._failed(exc, logging.WARNING)
            except Exception as exc:  # noqa: BLE001 - the daemon must outlive any bug
                log.exception("%s: unexpected error", self.name)
                self.last_error = f"{exc.__class__.__name__}: {exc}"
            finally:
                self._connected.set(0)
                if session is not None:
                    session.close()
            if self.stop.is_set():
                break
            self.state = "reconnecting"
            self.reconnects += 1
            self.metrics.reconnects.labels(self.settings.name).inc()
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.1f s", self.name, delay)
            self.stop.wait(delay)
        self.state = "stopped"
        log.info("%s: stopped", self.name)

    def _failed(self, exc: Exception, level: int) -> None:
        self.last_error = str(exc)
        log.log(level, "%s: %s", self.name, exc)
