"""Serving the API with uvicorn: in a thread of the daemon, or alone as ``warningshot api``."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from service.api.app import create_app
from service.api.context import ModelHandle
from service.errors import ConfigError
from service.scoring import load_classifier
from service.settings import Settings
from service.store import Store

if TYPE_CHECKING:
    from service.daemon import Daemon

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """One uvicorn server; ``start()`` runs it in a thread, ``run()`` in the calling (main) thread."""

    def __init__(self, app: FastAPI, host: str, port: int, *, access_log: bool = True) -> None:
        self.host = host
        self.app = app
        config = uvicorn.Config(
            app, host=host, port=port,
            # The entry point configured logging (with secret redaction); uvicorn must not replace it.
            log_config=None,
            access_log=access_log,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        if not _is_loopback(host):
            log.warning("the API listens on %s: put it behind a TLS proxy; tokens travel in clear text", host)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _warm(self) -> None:
        ctx = getattr(self.app.state, "ctx", None)
        if ctx is not None:
            ctx.scores.warm_in_background()

    def start(self, timeout: float = 15.0) -> ApiServer:
        self._warm()
        self._thread = threading.Thread(target=self.server.run, name="api:uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            # uvicorn logs a bind failure and ends its thread.
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise ConfigError(f"api: cannot listen on {self.host}:{self.server.config.port} (port in use?)")
            time.sleep(0.01)
        log.info("admin API on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully (exit status 0, like the daemon)."""
        stop = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; shutting the API down", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # uvicorn in a thread: in the main thread it would re-raise the signal
        # after shutting down, and the process would end as killed.
        self.start()
        while not stop.wait(0.5) and self._thread is not None and self._thread.is_alive():
            pass
        self.stop()


def daemon_server(daemon: Daemon) -> ApiServer:
    """The API of a running daemon: its store, model, metrics, watchers and live thresholds."""
    settings = daemon.settings
    app = create_app(settings, daemon.store, daemon.model, daemon, metrics=daemon.metrics, thresholds=daemon.thresholds,
                     playbook=daemon.playbook)
    return ApiServer(app, settings.api.host, settings.api.port)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """``warningshot api``: the API alone against the store, the model loading in the background."""
    if not (settings.api.admin_tokens or settings.api.viewer_tokens):
        raise ConfigError(
            "api: no token configured, so every request would be refused; set api.admin_tokens "
            "or the environment variable WARNINGSHOT_API__ADMIN_TOKENS='[\"<token>\"]'"
        )
    store = Store(settings.store.url, store_bodies=settings.store.store_bodies)
    store.migrate()
    model = ModelHandle()
    model.load_in_background(lambda: load_classifier(settings.model))
    server = ApiServer(create_app(settings, store, model), host or settings.api.host, port or settings.api.port)
    try:
        server.run()
    finally:
        store.close()
    return 0
