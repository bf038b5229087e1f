"""`warningshot retrain`: a new model version from the shipped data plus the store's corrections.

Steps: read the corrections (``feedback_export``) → train a candidate into a
new registry version → evaluate the candidate and the active model on the
fixed hand-written test split → apply the gate (:mod:`classifiers.gate`) →
promote (rewrite ACTIVE) or keep the current model. Whatever happens, the
candidate stays in the registry with its ``report.json`` (data counts,
metrics, the gate's checks), so a refused one can be inspected.

The test split is the scenario split of ``classifiers/data/emails`` only:
corrections are always trained on, never tested on, and ``--data`` directories
add their train and dev splits, so every version is judged on the same emails.

Evaluations are cached in the version's report, keyed by the model's manifest
and the test split's contents (and fp32/int8), so the active model is scored
once, not on every retrain. The shipped model's published evaluation
(``models/eval/test-fp32.json``, ``test-int8.json``) is used when it scored
exactly the current test emails with the model's thresholds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from classifiers import dataset, gate
from classifiers.dataset import Example
from classifiers.interface import LABELS
from classifiers.registry import (
    FAILED,
    PASSED,
    PROMOTED,
    REFUSED,
    TRAINING,
    Registry,
    Version,
    iso,
    read_json,
    utc_now,
)
from service.errors import ModelError, ModelFilesError

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
CORRECTION_SOURCE = "store-feedback"


def _quiet(_: str) -> None:
    pass


# ---- data ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Corrections:
    """Corrections from the store that can be trained on, and why the others cannot."""

    examples: tuple[Example, ...] = ()
    total: int = 0
    skipped_empty_body: int = 0
    skipped_invalid: int = 0
    skipped_in_test: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "used": len(self.examples), "skipped_empty_body": self.skipped_empty_body,
                "skipped_invalid": self.skipped_invalid, "skipped_in_test": self.skipped_in_test,
                "hard_negatives": sum(ex.hard_negative for ex in self.examples)}


def corrections_from_rows(rows: Sequence[Mapping[str, Any]], test: Sequence[Example] = ()) -> Corrections:
    """Training examples from ``feedback_export`` rows (the in-domain training format).

    A row without a body is skipped: the store keeps no text unless told to,
    and a subject alone is not the mail that was corrected. A row whose text
    is one of the test emails is skipped too, or the gate would be judged on
    training data.
    """
    test_texts = {ex.text for ex in test}
    examples: list[Example] = []
    empty = invalid = in_test = 0
    for row in rows:
        body = row.get("body")
        if not isinstance(body, str) or not body.strip():
            empty += 1
            continue
        labels = row.get("labels")
        if not isinstance(labels, list) or set(labels) - set(LABELS) or not row.get("id"):
            invalid += 1
            continue
        text = dataset.email_text(str(row.get("subject") or ""), body)
        if text in test_texts:
            in_test += 1
            continue
        examples.append(Example(
            id=str(row["id"]), text=text, targets=tuple(1.0 if label in labels else 0.0 for label in LABELS),
            mask=(1.0,) * len(LABELS), lang=str(row.get("lang") or "und"), source=CORRECTION_SOURCE,
            split="train", hard_negative=bool(row.get("hard_negative", False)),
        ))
    return Corrections(tuple(examples), len(rows), empty, invalid, in_test)


def load_corrections(store_url: str, test: Sequence[Example]) -> Corrections:
    """Every correction recorded in the store (all of them: a retrain starts from the base model)."""
    from service.api.repository import feedback_export
    from service.store import Store

    store = Store(store_url)
    try:
        store.migrate()
        return corrections_from_rows(feedback_export(store, since=None), test)
    finally:
        store.close()


def load_test_split() -> list[Example]:
    """The fixed hand-written test split every version is judged on."""
    return dataset.load_emails([dataset.DEFAULT_EMAIL_DIR], splits=("test",))


def split_fingerprint(rows: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for ex in sorted(rows, key=lambda r: r.id):
        digest.update(f"{ex.id}\0{ex.text}\0{ex.targets}\0{ex.lang}\0{ex.hard_negative}\n".encode())
    return digest.hexdigest()


def model_fingerprint(path: Path) -> str:
    """sha256 over the manifest's file hashes: weights, thresholds and config together."""
    from classifiers.model import MANIFEST_FILE

    manifest = read_json(path / MANIFEST_FILE)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelFilesError(f"{path / MANIFEST_FILE} is missing or not a valid manifest")
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


# ---- evaluation with a cache ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EvalContext:
    """How versions are scored: the test split, and the settings the daemon would load them with."""

    test: tuple[Example, ...]
    precision: str = "fp32"  # resolved: fp32, bf16 or int8, never auto
    base_cache: Path | None = None
    threads: int | None = None
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def create(cls, test: Sequence[Example], precision: str = "fp32", base_cache: Path | None = None,
               threads: int | None = None) -> EvalContext:
        from classifiers.model import resolve_precision

        return cls(tuple(test), resolve_precision(precision), base_cache, threads or None, split_fingerprint(test))


def summary(in_domain: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of an evaluation (what `model list` shows and the gate reads)."""
    return {
        "emails": in_domain.get("emails"), "macro_f1": in_domain.get("macro_f1"),
        "hard_negatives": in_domain.get("hard_negatives"), "hard_negative_fpr": in_domain.get("hard_negative_fpr"),
        "negative_fpr": in_domain.get("negative_fpr"),
        "labels": {k: v.get("f1") for k, v in (in_domain.get("labels") or {}).items()},
        "languages": {lang: {"emails": r.get("emails"), "macro_f1": r.get("macro_f1"),
                             "hard_negatives": r.get("hard_negatives"),
                             "hard_negative_fpr": r.get("hard_negative_fpr")}
                      for lang, r in (in_domain.get("languages") or {}).items()},
    }


def _has_gate_inputs(in_domain: Any) -> bool:
    return (isinstance(in_domain, dict) and {"emails", "macro_f1", "hard_negative_fpr", "languages"} <= in_domain.keys()
            and all(isinstance(r, dict) and {"emails", "macro_f1"} <= r.keys()
                    for r in in_domain["languages"].values()))


def _published_evaluation(version: Version, ctx: EvalContext) -> tuple[dict[str, Any], str] | None:
    """The shipped model's evaluation in models/eval/, if it scored exactly this test split."""
    from classifiers.model import THRESHOLDS_FILE

    path = version.path.parent / "eval" / f"test-{ctx.precision}.json"
    data = read_json(path)
    if not data or data.get("split") != "test":
        return None
    # evaluate's JSON says "precision"; files written before it only "quantized"
    if (data.get("precision") or ("int8" if data.get("quantized") else "fp32")) != ctx.precision:
        return None
    if data.get("thresholds") != read_json(version.path / THRESHOLDS_FILE):
        return None  # written for another model
    scored = {s.get("id"): sorted(s.get("labels") or []) for s in data.get("scores") or [] if isinstance(s, dict)}
    if scored != {ex.id: sorted(ex.labels) for ex in ctx.test}:
        return None  # the test split changed since
    in_domain = data.get("in_domain")
    return (in_domain, str(path)) if isinstance(in_domain, dict) and _has_gate_inputs(in_domain) else None


def cached_evaluation(registry: Registry, version: Version, ctx: EvalContext) -> tuple[dict[str, Any], str] | None:
    """``(in_domain metrics, where from)`` without scoring anything, or None."""
    model_fp = model_fingerprint(version.path)
    for entry in (registry.read_report(version.name).get("evaluations") or {}).values():
        if (isinstance(entry, dict) and entry.get("model") == model_fp and entry.get("test_split") == ctx.fingerprint
                and entry.get("precision") == ctx.precision and _has_gate_inputs(entry.get("in_domain"))):
            return entry["in_domain"], str(registry.report_path(version.name))
    if version.shipped:
        return _published_evaluation(version, ctx)
    return None


def evaluate_version(registry: Registry, version: Version, ctx: EvalContext, echo: Echo = _quiet,
                     use_cache: bool = True) -> dict[str, Any]:
    """The version's ``in_domain`` metrics on the test split, scored now unless a valid cache exists."""
    if use_cache:
        cached = cached_evaluation(registry, version, ctx)
        if cached is not None:
            echo(f"  {version.name}: cached evaluation ({cached[1]})")
            return cached[0]
    from classifiers.evaluate import evaluate
    from classifiers.model import WarningShotModel

    echo(f"  {version.name}: scoring {len(ctx.test)} test emails "
         f"({ctx.precision}; 10 s in bf16 to 1 min in fp32 on 2 CPU cores)")
    started = time.time()
    try:
        model = WarningShotModel.load(version.path, base_cache=ctx.base_cache, precision=ctx.precision,
                                      threads=ctx.threads)
    except ModelError as exc:
        raise type(exc)(f"model version {version.name} cannot be evaluated: {exc}") from exc
    in_domain = evaluate(model, ctx.test, [])["in_domain"]
    seconds = time.time() - started
    echo(f"  {version.name}: done in {seconds:.0f} s")
    entry = {"model": model_fingerprint(version.path), "test_split": ctx.fingerprint, "precision": ctx.precision,
             "at": iso(utc_now()), "seconds": round(seconds, 1), "in_domain": in_domain}
    evaluations = dict(registry.read_report(version.name).get("evaluations") or {})
    evaluations[f"test-{ctx.precision}"] = entry
    try:
        registry.update_report(version.name, evaluations=evaluations)
    except OSError as exc:  # a read-only registry only costs a re-evaluation next time
        log.warning("could not cache the evaluation of %s: %s", version.name, exc)
    return in_domain


# ---- judging and promotion -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a candidate."""

    version: str
    status: str
    compared_with: str
    result: gate.GateResult

    @property
    def promoted(self) -> bool:
        return self.status == PROMOTED


def judge_candidate(registry: Registry, candidate: Version, ctx: EvalContext, config: gate.GateConfig,
                    *, dry_run: bool = False, echo: Echo = _quiet) -> Outcome:
    """Evaluate candidate and active model, apply the gate, record it, promote on a pass (not on a dry run)."""
    active = registry.get(registry.active_name())
    echo(f"evaluating candidate {candidate.name} and the active model {active.name} on the test split")
    new = evaluate_version(registry, candidate, ctx, echo)
    old = evaluate_version(registry, active, ctx, echo)
    result = gate.judge(old, new, config)
    note = ""
    if not result.passed:
        status = REFUSED
        note = "refused: " + "; ".join(check.describe() for check in result.failed)
    elif dry_run:
        status, note = PASSED, "passed the gate (dry run: not made active)"
    elif registry.active_name() != active.name:
        status = PASSED
        note = (f"passed the gate against {active.name}, but the active model changed meanwhile to "
                f"{registry.active_name()}; not made active")
    else:
        registry.set_active(candidate.name, how="retrain", previous=active.name)
        status, note = PROMOTED, f"promoted over {active.name}"
    registry.update_report(candidate.name, status=status, note=note, decided=iso(utc_now()),
                           compared_with=active.name, gate=result.as_dict(),
                           test={"split": ctx.fingerprint, "precision": ctx.precision, "emails": len(ctx.test),
                                 "candidate": summary(new), "active": summary(old)})
    return Outcome(candidate.name, status, active.name, result)


# ---- the whole run ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetrainOptions:
    """What `warningshot retrain` was asked for."""

    epochs: float | None = None
    seed: int | None = None
    max_steps: int | None = None
    public_dir: Path | None = dataset.DEFAULT_PUBLIC_DIR
    extra_dirs: tuple[Path, ...] = ()
    dry_run: bool = False
    gate: gate.GateConfig = field(default_factory=gate.GateConfig)
    progress: bool = True


def train_candidate(registry: Registry, options: RetrainOptions, corrections: Corrections,
                    base_cache: Path | None, echo: Echo = _quiet) -> Version:
    """Train into a new version directory; on any failure the version is marked failed and the error re-raised."""
    from classifiers.train import TrainConfig, train, with_overrides

    config = with_overrides(TrainConfig(), epochs=options.epochs, seed=options.seed, max_steps=options.max_steps)
    parent = registry.active_name()
    version = registry.create_version({
        "status": TRAINING, "created": iso(utc_now()), "parent": parent,
        "options": {"epochs": config.epochs, "seed": config.seed, "max_steps": config.max_steps,
                    "public_data": str(options.public_dir) if options.public_dir else None,
                    "extra_dirs": [str(p) for p in options.extra_dirs], "dry_run": options.dry_run,
                    "gate": asdict(options.gate)},
        "data": {"corrections": corrections.as_dict()},
    })
    echo(f"training candidate {version.name} in {version.path}"
         + (f" (at most {config.max_steps} steps)" if config.max_steps else " (12 to 25 min on a 2-core CPU)"))
    try:
        train([dataset.DEFAULT_EMAIL_DIR, *options.extra_dirs], version.path, options.public_dir, config,
              progress=options.progress, base_cache=base_cache, extra_train=corrections.examples)
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        registry.update_report(version.name, status=FAILED, note=f"training failed: {reason}", error=reason)
        raise
    training = read_json(version.path / "training.json")
    data = training.get("data") or {}
    registry.update_report(version.name, data={
        "in_domain_train": int(data.get("train_emails", 0)) - len(corrections.examples),
        "corrections": corrections.as_dict(), "public_rows": data.get("public_rows"),
        "dev_emails": data.get("dev_emails"), "steps": training.get("steps"),
        "seconds": (training.get("seconds") or {}).get("total"),
    })
    return registry.get(version.name)


def retrain(settings: Any, options: RetrainOptions, echo: Echo = _quiet) -> Outcome:
    """The whole `warningshot retrain` for ``settings`` (a :class:`service.settings.Settings`)."""
    registry = Registry.from_settings(settings.model)
    with registry.retrain_lock():
        test = load_test_split()
        if not test:
            raise ModelError(f"no test emails in {dataset.DEFAULT_EMAIL_DIR}; the gate has nothing to judge on")
        ctx = EvalContext.create(test, settings.model.requested_precision, settings.model.base_cache,
                                 settings.model.threads)
        echo(f"registry {registry.root}; active model {registry.active_name()}")
        corrections = load_corrections(settings.store.url, test)
        echo(f"corrections in the store: {corrections.total}, used {len(corrections.examples)}"
             + (f", skipped {corrections.skipped_empty_body} with an empty body (the store kept no text for them; "
                "see corrections.keep_text and store.store_bodies)" if corrections.skipped_empty_body else "")
             + (f", skipped {corrections.skipped_invalid} with unknown labels" if corrections.skipped_invalid else "")
             + (f", skipped {corrections.skipped_in_test} that are test emails" if corrections.skipped_in_test
                else ""))
        candidate = train_candidate(registry, options, corrections, settings.model.base_cache, echo)
        try:
            return judge_candidate(registry, candidate, ctx, options.gate, dry_run=options.dry_run, echo=echo)
        except BaseException as exc:
            registry.update_report(candidate.name, status=FAILED, note=f"evaluation failed: {exc}", error=str(exc))
            raise


def version_summary(registry: Registry, version: Version, ctx: EvalContext | None) -> dict[str, Any] | None:
    """The version's cached test-split numbers, for `model list` (never scores anything)."""
    if ctx is not None:
        try:
            cached = cached_evaluation(registry, version, ctx)
        except ModelError:
            cached = None
        if cached is not None:
            return summary(cached[0])
    # e.g. the test split changed since: the numbers recorded at decision time, if any
    recorded = (version.report.get("test") or {}).get("candidate")
    return recorded if isinstance(recorded, dict) else None

