"""The ``warningshot`` command line.

Only this module (and classifiers/commands.py) prints; everything below it
logs or raises. A WarningShotError becomes a one-line message and exit code 2
(configuration) or 1 (anything else).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from classifiers.commands import COMMANDS as CLASSIFIER_COMMANDS
from service.errors import ConfigError, WarningShotError
from service.logs import configure_logging
from service.settings import CONFIG_ENV, Settings, load_settings

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _secrets(settings: Settings) -> list[str]:
    values = [m.password.get_secret_value() for m in settings.mailboxes]
    values += [t.get_secret_value() for t in (*settings.api.admin_tokens, *settings.api.viewer_tokens)]
    values.append(settings.smtp.password.get_secret_value())
    return [v for v in values if v]


def _load(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as exc:
        click.echo(f"warningshot: {exc}", err=True)
        ctx.exit(2)
        raise AssertionError("unreachable") from exc


@click.group(context_settings=CONTEXT)
@click.option(
    "-c", "--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help=f"Settings file (TOML). Default: ${CONFIG_ENV}, else built-in defaults.",
)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default=None,
              help="Override logging.level from the settings.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Override logging.format: human-readable text or JSON lines.")
@click.version_option(package_name="warningshot")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_level: str | None, log_format: str | None) -> None:
    """WarningShot watches a support mailbox, flags abusive, extortion and
    legal-threat mail with a multilingual model, tags it where agents see it,
    and drafts replies for a human to approve. It never sends on its own.

    Start with `warningshot check-config -c FILE`, then `warningshot run -c FILE`.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, log_level=log_level, log_format=log_format)


def _setup_logging(ctx: click.Context, settings: Settings) -> None:
    configure_logging(
        ctx.obj["log_level"] or settings.logging.level,
        ctx.obj["log_format"] or settings.logging.format,
        _secrets(settings),
    )


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the settings and report every problem at once (exit 2 if any)."""
    settings = _load(ctx)
    folders = sum(len(m.folders) for m in settings.mailboxes)
    click.echo(f"configuration OK: {len(settings.mailboxes)} mailbox(es), {folders} folder(s) watched")
    if not settings.mailboxes:
        click.echo("note: no [[mailboxes]] configured; `run` needs at least one", err=True)


@main.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: watch every configured folder, classify and tag new mail.

    Uses IMAP IDLE where the server offers it, polling otherwise; reconnects
    with backoff when the server is unreachable. SIGTERM or Ctrl-C finish the
    current message, save the checkpoint and exit 0.
    """
    settings = _load(ctx)
    _setup_logging(ctx, settings)
    from service.daemon import Daemon

    try:
        daemon = Daemon(settings)
    except ConfigError as exc:
        click.echo(f"warningshot: {exc}", err=True)
        ctx.exit(2)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        code = daemon.run_forever()
    except ConfigError as exc:  # e.g. the API's port is taken
        click.echo(f"warningshot: {exc}", err=True)
        ctx.exit(2)
    ctx.exit(code)


@main.command("api")
@click.option("--host", default=None, help="Listen address (default: api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: api.port, 8025).")
@click.pass_context
def api_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the admin HTTP API alone against the store (docs at /docs).

    For when the daemon runs without `api.enabled`, or elsewhere: thresholds
    saved here reach the daemon within a second. Mailbox states are only known
    to the API inside the daemon. Tokens: api.admin_tokens / api.viewer_tokens,
    or WARNINGSHOT_API__ADMIN_TOKENS='["..."]'.
    """
    settings = _load(ctx)
    _setup_logging(ctx, settings)
    from service.api.server import serve

    try:
        code = serve(settings, host=host, port=port)
    except ConfigError as exc:
        click.echo(f"warningshot: {exc}", err=True)
        ctx.exit(2)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.exit(code)


@main.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write JSON Lines here (default: stdout).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: for 20+ files).")
@click.pass_context
def scan_command(ctx: click.Context, paths: tuple[Path, ...], output, progress: bool | None) -> None:  # type: ignore[no-untyped-def]
    """Classify .eml files (or directories of them) without IMAP.

    Runs the daemon's parse → classify → decide path and writes one JSON line
    per message: {"id", "message_id", "language", "scores", "labels",
    "evidence", "decision", "defects"}; a file that cannot be read gives
    {"id", "error"} and the exit code 1 after every other file is done.
    """
    settings = _load(ctx)
    _setup_logging(ctx, settings)
    from service.scan import eml_files, scan, write_results
    from service.scoring import effective_thresholds, load_classifier

    files = eml_files(paths)
    try:
        classifier = load_classifier(settings.model)
        thresholds = effective_thresholds(classifier, settings)
        results = scan(files, classifier, thresholds, settings, batch_size=settings.model.batch_size)
        _, errors = write_results(results, output, len(files), progress)
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc
    if errors:
        click.echo(f"warningshot: {errors} of {len(files)} file(s) could not be read", err=True)
        ctx.exit(1)


@main.command("demo")
@click.option("--keep-running", is_flag=True, help="Keep the server and daemon up to look at the tags in a mail client.")
@click.pass_context
def demo(ctx: click.Context, keep_running: bool) -> None:
    """Try WarningShot on a throwaway local mailbox with sample mail.

    Starts a private Dovecot on 127.0.0.1 (needs root and Debian's
    dovecot-imapd), delivers the multilingual samples in config/demo/, runs
    the daemon with the shipped model and prints what it tagged.
    """
    settings = _load(ctx)
    configure_logging(ctx.obj["log_level"] or "WARNING", ctx.obj["log_format"] or settings.logging.format)
    from service.demo import run_demo

    try:
        ctx.exit(run_demo(settings, click.echo, keep_running=keep_running))
    except WarningShotError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("config-reference")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown here (default: stdout).")
def config_reference(output: Path | None) -> None:
    """Print the configuration reference (every key, type, default, env
    variable), generated from the settings model; docs/configuration.md is
    its output: `warningshot config-reference -o docs/configuration.md`."""
    from service.config_reference import render

    text = render()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


for command in CLASSIFIER_COMMANDS:
    main.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
