"""XOAUTH2 access tokens from a command or a file.

Tokens are short-lived; they are read afresh at every login, and the watcher
logs in again when the server rejects an expired one, so a token refreshed by
an external helper (for example oama or a cron job) is picked up on its own.
"""

from __future__ import annotations

import shlex
import subprocess

from service.errors import MailboxAuthError
from service.logs import redact
from service.settings import MailboxSettings


def oauth2_token(settings: MailboxSettings) -> str:
    if settings.oauth2_token_command:
        try:
            result = subprocess.run(
                shlex.split(settings.oauth2_token_command),
                capture_output=True, text=True, timeout=60, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MailboxAuthError(f"{settings.name}: oauth2_token_command failed to run: {exc}") from exc
        if result.returncode != 0:
            # stderr may echo the refresh token; report the exit status only.
            raise MailboxAuthError(f"{settings.name}: oauth2_token_command exited with {result.returncode}")
        token = result.stdout.strip()
    else:
        assert settings.oauth2_token_file is not None
        try:
            token = settings.oauth2_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MailboxAuthError(f"{settings.name}: cannot read oauth2_token_file: {exc}") from exc
    if not token:
        raise MailboxAuthError(f"{settings.name}: the OAuth2 token source returned nothing")
    redact(token)
    return token
