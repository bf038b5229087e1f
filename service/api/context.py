"""What the API's routes work with: one :class:`ApiContext` per app, built by create_app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from classifiers.interface import Classifier
from service.api.live_thresholds import LiveThresholds
from service.api.score_index import ScoreIndex
from service.metrics import Metrics
from service.settings import MailboxSettings, Settings
from service.store import Store

if TYPE_CHECKING:
    from service.api.deps import TokenBook
    from service.playbook.engine import Playbook

log = logging.getLogger(__name__)


class ModelNotReady(Exception):
    """The classifier is still loading, or failed to load (503)."""


class ModelHandle:
    """The classifier, which ``warningshot api`` loads in the background, and the lock for calling it.

    Inside the daemon the lock is the pipeline's: torch already uses every core
    for one batch, so an on-demand classification waits its turn.
    """

    def __init__(self, classifier: Classifier | None = None, *, lock: threading.Lock | None = None) -> None:
        self._classifier = classifier
        self.lock = lock or threading.Lock()
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._classifier is not None

    def require(self) -> Classifier:
        if self._classifier is None:
            raise ModelNotReady(self.error or "the model is still loading")
        return self._classifier

    def replace(self, classifier: Classifier) -> None:
        """Swap in a reloaded model; callers hold ``lock`` so no call sees half a swap."""
        self._classifier = classifier
        self.error = None

    def load_in_background(self, loader: Callable[[], Classifier]) -> threading.Thread:
        def load() -> None:
            try:
                self._classifier = loader()
                log.info("model loaded")
            except Exception as exc:  # noqa: BLE001 - reported by /readyz and every model route
                self.error = f"the model failed to load: {exc.__class__.__name__}: {exc}"
                log.error("%s", self.error)

        thread = threading.Thread(target=load, name="api:model-loader", daemon=True)
        thread.start()
        return thread


class Backoff(Protocol):
    @property
    def maximum(self) -> float: ...
    @property
    def current(self) -> float: ...


class WatcherState(Protocol):
    """What the API reads of a :class:`service.watcher.FolderWatcher`."""

    @property
    def settings(self) -> MailboxSettings: ...
    @property
    def folder(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def backoff(self) -> Backoff: ...


class DaemonState(Protocol):
    """What the API reads of a :class:`service.daemon.Daemon`."""

    @property
    def watchers(self) -> Sequence[WatcherState]: ...

    def reload_model(self) -> str:
        """Load the active model and swap it in; its version. Raises when loading fails."""
        ...


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    model: ModelHandle
    thresholds: LiveThresholds
    metrics: Metrics
    tokens: TokenBook
    scores: ScoreIndex
    playbook: Playbook
    daemon: DaemonState | None = None
    # Threshold writes from this process queue here instead of racing in the store.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
