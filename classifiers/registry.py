"""Versioned local model directory: which fine-tuned model the daemon runs.

Layout of the registry root (setting ``model.registry``)::

    var/models/
        ACTIVE                     one line: the version in use ("shipped" or absent: model.path)
        history.jsonl              one line per switch (time, from, to, how)
        shipped-report.json        cached test-split evaluation of the shipped model
        v2-20261123T1930Z/         a model directory as WarningShotModel.save writes it,
            report.json            plus what retrain recorded: data, metrics, gate decision, parent
        v3-20261130T0815Z/
            ...

The shipped model (``model.path``) is the built-in version ``shipped`` and is
never copied. Version names carry a monotonic number (the shipped model is
v1) and the UTC time the version was started, so they sort and say when.

``ACTIVE`` is replaced atomically (temporary file + ``os.replace``): a daemon
reloading at any moment reads either the old name or the new one, never half
a name. A version is switched to only after it loaded (``use``), so a running
daemon's reload can only fail on files damaged afterwards; loading verifies
every file's sha256 against the version's manifest either way.

Nothing here imports torch; loading a model is left to the caller or done lazily.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import ModelError, ModelFilesError

log = logging.getLogger(__name__)

SHIPPED = "shipped"
ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "history.jsonl"
REPORT_FILE = "report.json"
SHIPPED_REPORT_FILE = "shipped-report.json"
LOCK_FILE = ".retrain.lock"
REPORT_FORMAT = "warningshot-model-report/1"
# The shipped model is version 1; the first retrained one is v2.
FIRST_NUMBER = 2
VERSION_RE = re.compile(r"^v(?P<number>[1-9][0-9]*)-(?P<stamp>[0-9]{8}T[0-9]{4}Z)$")
_STAMP = "%Y%m%dT%H%MZ"

# report.json "status" values
TRAINING = "training"    # retrain is writing it (or died while doing so: see "error")
FAILED = "failed"        # retrain stopped with an error
PROMOTED = "promoted"    # passed the gate and was made active by retrain
PASSED = "passed"        # passed the gate, not made active (--dry-run, or the active model changed meanwhile)
REFUSED = "refused"      # failed the gate; `model use` needs --force


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_version_name(name: str) -> bool:
    return name == SHIPPED or VERSION_RE.match(name) is not None


@dataclass(frozen=True, slots=True)
class Version:
    """One model version: its name, its model directory and what is known about it."""

    name: str
    path: Path
    number: int
    created: datetime | None
    report: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        return self.name == SHIPPED

    @property
    def status(self) -> str:
        if self.shipped:
            return SHIPPED
        return str(self.report.get("status") or "unknown")

    @property
    def refused(self) -> bool:
        return self.status == REFUSED


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it into place, so readers never see half a file."""
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide ACTIVE from a daemon running as another user
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> dict[str, Any]:
    """Parsed JSON object at ``path``; ``{}`` when missing or unreadable (a report is informative only)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


class Registry:
    """The versions under ``root`` plus the shipped model at ``shipped``."""

    def __init__(self, root: Path | str, shipped: Path | str) -> None:
        self.root = Path(root)
        self.shipped_dir = Path(shipped)

    @classmethod
    def from_settings(cls, settings: Any) -> Registry:
        """From :class:`service.settings.ModelSettings` (``registry`` and ``path``)."""
        return cls(settings.registry, settings.path)

    # ---- reading -------------------------------------------------------------
    def report_path(self, name: str) -> Path:
        return self.root / SHIPPED_REPORT_FILE if name == SHIPPED else self.root / name / REPORT_FILE

    def read_report(self, name: str) -> dict[str, Any]:
        return read_json(self.report_path(name))

    def _shipped(self) -> Version:
        manifest = self.shipped_dir / "manifest.json"
        created = (datetime.fromtimestamp(manifest.stat().st_mtime, UTC) if manifest.is_file() else None)
        return Version(SHIPPED, self.shipped_dir, 1, created, self.read_report(SHIPPED))

    def _version(self, path: Path) -> Version | None:
        match = VERSION_RE.match(path.name)
        if match is None or not path.is_dir():
            return None
        created = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
        return Version(path.name, path, int(match["number"]), created, read_json(path / REPORT_FILE))

    def versions(self) -> list[Version]:
        """The shipped model first, then every version directory by number."""
        found = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                version = self._version(path)
                if version is not None:
                    found.append(version)
        return [self._shipped(), *sorted(found, key=lambda v: v.number)]

    def get(self, name: str) -> Version:
        """The version called ``name``; ModelError naming the known ones when there is none."""
        if name == SHIPPED:
            return self._shipped()
        version = self._version(self.root / name) if VERSION_RE.match(name) else None
        if version is None:
            known = ", ".join(v.name for v in self.versions())
            raise ModelError(f"no model version {name!r} in {self.root}; known versions: {known}")
        return version

    def active_name(self) -> str:
        """The name ACTIVE holds; ``shipped`` when there is no ACTIVE file."""
        path = self.root / ACTIVE_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SHIPPED
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path} cannot be read ({exc}); fix it or roll back with "
                             "`warningshot model use shipped`") from exc
        name = text.strip() or SHIPPED
        if not is_version_name(name):
            raise ModelError(f"{path} names {name[:80]!r}, which is not a model version (expected 'shipped' or "
                             "e.g. 'v2-20261123T1930Z'); roll back with `warningshot model use shipped`")
        return name

    def active_dir(self) -> tuple[str, Path]:
        """``(version, model directory)`` that ACTIVE names; ModelError when that version is gone."""
        name = self.active_name()
        if name == SHIPPED:
            return name, self.shipped_dir
        path = self.root / name
        if not path.is_dir():
            raise ModelFilesError(f"the active model version {name} ({self.root / ACTIVE_FILE}) does not exist: "
                                  f"{path} is missing; roll back with `warningshot model use shipped`")
        return name, path

    # ---- writing -------------------------------------------------------------
    def create_version(self, report: Mapping[str, Any], now: datetime | None = None) -> Version:
        """A new, empty version directory with the next number and ``report`` as its report.json."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = (now or utc_now()).astimezone(UTC).strftime(_STAMP)
        number = max([FIRST_NUMBER - 1, *(v.number for v in self.versions())]) + 1
        while True:
            name = f"v{number}-{stamp}"
            try:
                (self.root / name).mkdir()
            except FileExistsError:  # another process took this number first
                number += 1
                continue
            break
        created = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
        data = {"format": REPORT_FORMAT, "version": name, **report}
        write_json_atomic(self.root / name / REPORT_FILE, data)
        return Version(name, self.root / name, number, created, data)

    def update_report(self, name: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the version's report.json (atomically) and return it."""
        report = self.read_report(name)
        report.update(changes)
        write_json_atomic(self.report_path(name), report)
        return report

    def set_active(self, name: str, *, how: str, previous: str | None = None) -> None:
        """Point ACTIVE at ``name`` (atomic rename) and log the switch in history.jsonl."""
        if not is_version_name(name):
            raise ModelError(f"{name!r} is not a model version name")
        if previous is None:
            try:
                previous = self.active_name()
            except ModelError:
                previous = None
        _write_atomic(self.root / ACTIVE_FILE, name + "\n")
        entry = {"at": iso(utc_now()), "from": previous, "to": name, "how": how}
        try:
            with (self.root / HISTORY_FILE).open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
        except OSError as exc:  # the switch happened; the log line is a convenience
            log.warning("could not append to %s: %s", self.root / HISTORY_FILE, exc)

    @contextmanager
    def retrain_lock(self) -> Iterator[None]:
        """Held while a retrain runs: two at once would only starve each other of the CPU."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise ModelError(f"another retrain is running (pid {holder}); wait for it to finish") from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def active_model_dir(settings: Any) -> tuple[str, Path]:
    """``(version, directory)`` of the model ``settings`` (ModelSettings) makes active right now.

    Reads ACTIVE on every call, so calling it again after `warningshot model use`
    or a promoting retrain gives the new version.
    """
    return Registry.from_settings(settings).active_dir()


def validate_version(version: Version, *, base_cache: Path | str | None = None, precision: str = "fp32",
                     threads: int | None = None) -> None:
    """Load the version the way the daemon would, so a switch never points at a model that fails to load."""
    from classifiers.model import WarningShotModel  # torch loads only here

    try:
        WarningShotModel.load(version.path, base_cache=base_cache, precision=precision, threads=threads)
    except ModelError as exc:
        raise type(exc)(f"model version {version.name} does not load: {exc}") from exc
