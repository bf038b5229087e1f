#!/usr/bin/env python3
"""OAuth2 access tokens for WarningShot's XOAUTH2 login (Gmail, Microsoft 365).

Standard library only; see docs/oauth2.md.

  authorize  once, interactively: sign in with the mailbox's account in a
             browser; the refresh token is saved to --refresh-token-file.
  access     WarningShot's oauth2_token_command: prints a fresh access token.
             With --refresh-token-file it uses the refresh token (and saves
             the new one when the provider rotates it); with
             --client-credentials it asks for an app-only token (Microsoft 365).

The client secret, where there is one, is read from $OAUTH2_CLIENT_SECRET so
that it stays out of the process list. Errors go to stderr without any token.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import os
import secrets
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

PROVIDERS: dict[str, dict[str, Any]] = {
    "google": {
        "auth": "https://accounts.google.com/o/oauth2/v2/auth",
        "token": "https://oauth2.googleapis.com/token",
        "scope": "https://mail.google.com/",
        "app_scope": None,
        "send_scope_on_refresh": False,
        "redirect_host": "127.0.0.1",
        # Without these Google returns no refresh token on a repeated consent.
        "auth_params": {"access_type": "offline", "prompt": "consent"},
    },
    "microsoft": {
        "auth": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        "token": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        "app_scope": "https://outlook.office365.com/.default",
        # Microsoft issues the access token for the scope asked on refresh.
        "send_scope_on_refresh": True,
        "redirect_host": "localhost",
        "auth_params": {},
    },
}


class TokenError(Exception):
    pass


def _post(url: str, fields: dict[str, str]) -> dict:
    data = urllib.parse.urlencode({k: v for k, v in fields.items() if v}).encode()
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            body = {}
        # error / error_description name the problem and never echo the tokens.
        raise TokenError(f"{url}: HTTP {exc.code}: {body.get('error', '')} {body.get('error_description', '')}"
                         .strip()) from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise TokenError(f"{url}: {exc}") from None


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".refresh-")
    with os.fdopen(fd, "w") as f:  # mkstemp creates it 0600
        f.write(value + "\n")
    os.replace(tmp, path)


def _endpoint(args: argparse.Namespace, key: str) -> str:
    override = getattr(args, f"{key}_url", None)
    return override or PROVIDERS[args.provider][key].format(tenant=args.tenant)


def access(args: argparse.Namespace) -> str:
    fields = {"client_id": args.client_id, "client_secret": os.environ.get("OAUTH2_CLIENT_SECRET", "")}
    if args.client_credentials:
        scope = args.scope or PROVIDERS[args.provider]["app_scope"]
        if not scope:
            raise TokenError(f"{args.provider} has no app-only IMAP access; use --refresh-token-file")
        fields.update(grant_type="client_credentials", scope=scope)
    else:
        path = Path(args.refresh_token_file)
        try:
            refresh = path.read_text().strip()
        except OSError as exc:
            raise TokenError(f"cannot read the refresh token: {exc}") from None
        provider = PROVIDERS[args.provider]
        scope = args.scope or (provider["scope"] if provider["send_scope_on_refresh"] else "")
        fields.update(grant_type="refresh_token", refresh_token=refresh, scope=scope)
    answer = _post(_endpoint(args, "token"), fields)
    token = answer.get("access_token")
    if not token:
        raise TokenError("the token endpoint answered without an access_token")
    rotated = answer.get("refresh_token")
    if not args.client_credentials and rotated and rotated != fields["refresh_token"]:
        _write_secret(Path(args.refresh_token_file), rotated)
    return token


def authorize(args: argparse.Namespace) -> str:
    provider = PROVIDERS[args.provider]
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    received: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            if "code" in query or "error" in query:
                received.update(query)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Done; you can close this window.\n")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    redirect = f"http://{provider['redirect_host']}:{server.server_port}/"
    query = {
        "client_id": args.client_id, "response_type": "code", "redirect_uri": redirect,
        "scope": args.scope or provider["scope"], "state": state,
        "code_challenge": challenge, "code_challenge_method": "S256", **provider["auth_params"],
    }
    print(f"Open this address in a browser and sign in as the mailbox's account:\n\n"
          f"  {_endpoint(args, 'auth')}?{urllib.parse.urlencode(query)}\n\n"
          f"(waiting on {redirect}; from another machine: ssh -L {server.server_port}:127.0.0.1:"
          f"{server.server_port} this-host)", file=sys.stderr)
    while not received:
        server.handle_request()
    server.server_close()
    if received.get("state") != state:
        raise TokenError("the answer's state does not match; try again")
    if "error" in received:
        raise TokenError(f"sign-in refused: {received['error']} {received.get('error_description', '')}".strip())
    answer = _post(_endpoint(args, "token"), {
        "grant_type": "authorization_code", "code": received["code"], "redirect_uri": redirect,
        "client_id": args.client_id, "client_secret": os.environ.get("OAUTH2_CLIENT_SECRET", ""),
        "code_verifier": verifier,
    })
    if not answer.get("refresh_token"):
        raise TokenError("no refresh token in the answer (Google: revoke the app's access and authorize again)")
    _write_secret(Path(args.refresh_token_file), answer["refresh_token"])
    return f"refresh token saved to {args.refresh_token_file}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("authorize", "access"):
        p = sub.add_parser(name)
        p.add_argument("--provider", choices=sorted(PROVIDERS), required=True)
        p.add_argument("--client-id", required=True)
        p.add_argument("--tenant", default="organizations",
                       help="Microsoft: the directory (tenant) id or domain (default: organizations)")
        p.add_argument("--scope", default=None, help="default: IMAP access for the provider")
        p.add_argument("--token-url", default=None, help="override the provider's token endpoint")
        if name == "authorize":
            p.add_argument("--refresh-token-file", required=True)
            p.add_argument("--port", type=int, default=0, help="loopback port for the redirect (default: any)")
        else:
            how = p.add_mutually_exclusive_group(required=True)
            how.add_argument("--refresh-token-file")
            how.add_argument("--client-credentials", action="store_true",
                             help="app-only token (Microsoft 365 IMAP.AccessAsApp), client secret required")
    args = parser.parse_args(argv)
    try:
        print(access(args) if args.command == "access" else authorize(args))
    except TokenError as exc:
        print(f"oauth2-token: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
