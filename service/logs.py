"""Logging set-up for the entry point: text or JSON lines, secrets redacted.

Log calls across the code base never pass mail bodies; redaction is the second
line of defence for secrets (passwords, tokens) that an exception message from
a library might carry. It runs on the finished line, traceback included, so a
secret cannot slip through a formatted exception.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "[redacted]"


class Redactor:
    """Replaces known secrets in text; secrets learnt at run time (OAuth2 tokens) can be added."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        # Shorter values would shred ordinary words; the settings refuse such secrets anyway.
        with self._lock:
            known = {*self._secrets, *(s for s in secrets if len(s) >= 4)}
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


_redactor = Redactor()


def redact(*secrets: str) -> None:
    """Keep these values (e.g. a freshly fetched access token) out of every log line from now on."""
    _redactor.add(*secrets)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "message": _redactor(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = _redactor(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _redactor(super().format(record))


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    redact(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # imapclient logs every command at DEBUG, message bodies included.
    logging.getLogger("imapclient").setLevel(logging.WARNING)
    for noisy in ("alembic", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
