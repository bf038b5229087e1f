"""``warningshot scan``: the daemon's parse → classify → decide path on .eml files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from classifiers.interface import Classifier, Thresholds
from service.decision import decide
from service.errors import WarningShotError
from service.mail.parse import parse_message
from service.settings import Settings


def eml_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and every *.eml under the directories named, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.eml") if p.is_file()))
        else:
            found.append(path)
    return found


@dataclass(frozen=True, slots=True)
class ScanResult:
    line: dict[str, Any]
    ok: bool


def scan(
    files: list[Path], classifier: Classifier, thresholds: Thresholds, settings: Settings, *, batch_size: int = 16
) -> Iterator[ScanResult]:
    """One result per file, in order; unreadable files give an error line, never a stop."""
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        results: list[ScanResult | None] = [None] * len(batch)
        parsed = []
        for i, path in enumerate(batch):
            try:
                parsed.append((i, path, parse_message(path.read_bytes(), max_chars=settings.model.max_chars)))
            except (OSError, WarningShotError) as exc:
                results[i] = ScanResult({"id": str(path), "error": f"{exc.__class__.__name__}: {exc}"}, ok=False)
        all_scores = classifier.predict([m.text for _, _, m in parsed]) if parsed else []
        for (i, path, message), scores in zip(parsed, all_scores, strict=True):
            decision = decide(scores, message.language, thresholds, settings.tagging)
            evidence = classifier.evidence(message.text, decision.labels) if decision.labels else {}
            results[i] = ScanResult(
                {
                    "id": str(path),
                    "message_id": message.message_id,
                    "language": message.language,
                    "scores": {label: round(float(p), 6) for label, p in scores.items()},
                    "labels": list(decision.labels),
                    "evidence": evidence,
                    "decision": decision.as_record(),
                    "defects": list(message.defects),
                },
                ok=True,
            )
        yield from (r for r in results if r is not None)


def write_results(results: Iterable[ScanResult], out: IO[str], total: int, progress: bool | None) -> tuple[int, int]:
    """Write JSON lines; return (messages, errors)."""
    done = errors = 0
    with tqdm(total=total, unit="msg", disable=progress is False or (progress is None and total < 20), desc="scan") as bar:
        for result in results:
            out.write(json.dumps(result.line, ensure_ascii=False) + "\n")
            done += 1
            errors += 0 if result.ok else 1
            bar.update(1)
    return done, errors
