"""XOAUTH2 login against a real Dovecot that checks tokens with an introspection endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
from conftest import deliver, flags_by_message_id, make_mail, wait_for, write_config

from service.local_dovecot import Dovecot, free_port

VALID = {"fresh-token"}


class Introspection(BaseHTTPRequestHandler):
    """RFC 7662 token introspection: only tokens in VALID are active."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        token = form.get("token", [""])[0]
        body = json.dumps({"active": token in VALID, "username": "support"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def oauth_dovecot() -> Iterator[Dovecot]:
    http = HTTPServer(("127.0.0.1", free_port()), Introspection)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = Dovecot(oauth2_introspection_url=f"http://127.0.0.1:{http.server_address[1]}/introspect")
    server.start()
    yield server
    server.cleanup()
    http.shutdown()


def oauth_config(tmp_path, server, source: str):
    config = write_config(tmp_path, server)
    text = config.read_text().replace('password = "support-pass"', f'auth = "xoauth2"\n{source}')
    config.write_text(text)
    return config


def test_expired_token_in_file_is_refreshed_without_restart(oauth_dovecot, daemon_process, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("expired-token\n")
    daemon = daemon_process(oauth_config(tmp_path, oauth_dovecot, f'oauth2_token_file = "{token_file}"'))
    wait_for(lambda: "login refused" in daemon.log(), 20, what="the expired token to be refused")
    deliver(oauth_dovecot, make_mail(1, body="[[abusive]]"))
    token_file.write_text("fresh-token\n")  # what an external refresher would do
    wait_for(lambda: "Abusive" in flags_by_message_id(oauth_dovecot).get("<ticket-1@example.org>", set()), 30)
    assert "fresh-token" not in daemon.log() and "expired-token" not in daemon.log()


def test_token_from_a_command(oauth_dovecot, daemon_process, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("fresh-token")
    deliver(oauth_dovecot, make_mail(1))
    daemon_process(oauth_config(tmp_path, oauth_dovecot, f'oauth2_token_command = "cat {token_file}"'))
    wait_for(lambda: "WarningShot/Scanned" in flags_by_message_id(oauth_dovecot).get("<ticket-1@example.org>", set()), 20)
