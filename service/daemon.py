"""``warningshot run``: the watchers, the shared pipeline, model reloads and a clean shutdown."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from classifiers.interface import Classifier, model_version
from service.api.context import ModelHandle
from service.api.live_thresholds import LiveThresholds
from service.corrections import CorrectionSync, CorrectionWatcher
from service.errors import ConfigError
from service.mailbox.base import FlagReader, FolderSession
from service.mailbox.imap import open_folder
from service.mailbox.imap_flags import open_flag_reader
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.playbook.engine import Playbook
from service.scoring import effective_thresholds, load_classifier
from service.settings import MailboxSettings, Settings
from service.store import Store
from service.watcher import Backoff, FolderWatcher

if TYPE_CHECKING:
    from service.api.server import ApiServer

log = logging.getLogger(__name__)


class Daemon:
    """Owns the store, the classifier and one watcher thread per folder."""

    def __init__(
        self,
        settings: Settings,
        *,
        classifier: Classifier | None = None,
        opener: Callable[[MailboxSettings, str], FolderSession] = open_folder,
        flag_opener: Callable[[MailboxSettings, bool], FlagReader] = open_flag_reader,
    ) -> None:
        if not settings.mailboxes:
            raise ConfigError("mailboxes: no mailbox configured; add a [[mailboxes]] section")
        self.settings = settings
        self.stop = threading.Event()
        self.metrics = Metrics()
        self.store = Store(settings.store.url, store_bodies=settings.store.store_bodies)
        self.store.migrate()
        self.classifier = classifier or load_classifier(settings.model)
        # Thresholds stored through the admin API apply from the next message on.
        self.thresholds = LiveThresholds(self.store, lambda: effective_thresholds(self.classifier, settings))
        # Drafts, sender history and approval (approve_draft, reject_draft, reset_sender
        # for the API). Its litmus test calls the model through the pipeline's lock.
        self.playbook = Playbook(
            settings, self.store, score=lambda texts: self.pipeline.predict(texts), thresholds=self.thresholds,
            opener=opener,
        )
        self.pipeline = Pipeline(
            classifier=self.classifier,
            store=self.store,
            tagging=settings.tagging,
            thresholds=self.thresholds,
            max_attempts=settings.daemon.max_attempts,
            batch_size=settings.daemon.batch_size,
            max_chars=settings.model.max_chars,
            dry_run=settings.daemon.dry_run,
            metrics=self.metrics,
            playbook=self.playbook,
        )
        # The classifier as the API sees it: same lock, swapped together on reload.
        self.model = ModelHandle(self.classifier, lock=self.pipeline.model_lock)
        self.watchers = [
            FolderWatcher(
                mailbox, folder, self.pipeline, self.stop, opener=opener,
                backoff=Backoff(settings.daemon.backoff_initial_seconds, settings.daemon.backoff_max_seconds),
            )
            for mailbox in settings.mailboxes
            for folder in mailbox.folders
        ]
        self.correction_watchers = []
        if settings.corrections.enabled and not settings.daemon.dry_run:
            self.correction_watchers = [
                CorrectionWatcher(
                    CorrectionSync(mailbox, self.store, settings.tagging, settings.corrections, self.metrics,
                                   settings.model.max_chars),
                    self.stop, opener=flag_opener,
                    backoff=Backoff(settings.daemon.backoff_initial_seconds, settings.daemon.backoff_max_seconds),
                )
                for mailbox in settings.mailboxes
            ]
        self._threads: list[threading.Thread] = []
        self._reload_requested = threading.Event()
        self._reload_lock = threading.Lock()
        self.api: ApiServer | None = None
        if settings.api.enabled:
            from service.api.server import daemon_server  # FastAPI loads only when the API is on

            self.api = daemon_server(self)

    def start(self) -> None:
        if self.api is not None:
            self.api.start()
        for watcher in [*self.watchers, *self.correction_watchers]:
            thread = threading.Thread(target=watcher.run, name=f"watch:{watcher.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def reload_model(self) -> str:
        """Load the model the settings name now (the registry's active version) and swap it in.

        Loading takes seconds and happens beside the running pipeline; the swap
        waits for the model lock, so it falls between two model calls and every
        message is classified by exactly one model, the old or the new. On
        failure the current model stays and the error is raised.
        """
        with self._reload_lock:
            try:
                classifier = load_classifier(self.settings.model)
            except Exception as exc:
                self.metrics.model_reloads.labels("failed").inc()
                log.error("model reload failed; keeping the current model: %s", exc)
                raise
            with self.pipeline.model_lock:
                self.classifier = classifier
                self.pipeline.classifier = classifier
                self.model.replace(classifier)
            self.thresholds.invalidate()
            self.metrics.model_reloads.labels("ok").inc()
            version = model_version(classifier)
            log.info("model reloaded: %s", version)
            return version

    def request_reload(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        # Only a flag: the main loop loads the model, outside the signal handler.
        self._reload_requested.set()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s; finishing the current message", signal.Signals(signum).name)
        self.stop.set()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT; each watcher finishes its message and checkpoints."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        self.start()
        log.info("watching %d folder(s)", len(self.watchers))
        # The main thread stays free to receive signals.
        while not self.stop.wait(0.5):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                log.info("received SIGHUP; reloading the model")
                # A failure is logged by reload_model, and the old model keeps working.
                with contextlib.suppress(Exception):
                    self.reload_model()
        self.join()
        if self.api is not None:
            self.api.stop()
        self.store.close()
        log.info("stopped cleanly")
        return 0
