"""The deployment files agree with the code: systemd unit, compose demo, Dockerfile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from service.settings import ApiSettings, load_settings, password_env

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "warningshot.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
VENV_WARNINGSHOT = Path(sys.executable).parent / "warningshot"
DEFAULT_PORT = ApiSettings.model_fields["port"].default
ADMIN_TOKEN = "0123456789abcdef0123456789abcdef"


def _unit() -> dict[str, list[str]]:
    """key -> values (a key may repeat) of the [Service] and [Unit] sections."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def _dockerfile_final_stage() -> list[str]:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


# -- systemd --------------------------------------------------------------------


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.skip(f"{SYSTEMD_ANALYZE} is not installed")
    probe = tmp_path / "probe.service"
    probe.write_text("[Service]\nExecStart=/bin/true\n")
    sanity = _verify(probe)
    if sanity.returncode != 0:
        pytest.skip(f"systemd-analyze cannot run in this sandbox: {sanity.stderr.strip() or sanity.returncode}")
    assert VENV_WARNINGSHOT.exists()
    # The unit names the installed path; here the venv's entry point stands in for it.
    text = UNIT.read_text()
    assert "ExecStart=/opt/warningshot/.venv/bin/warningshot " in text
    copy = tmp_path / "warningshot.service"
    copy.write_text(text.replace("/opt/warningshot/.venv/bin/warningshot", str(VENV_WARNINGSHOT)))
    result = _verify(copy)
    # verify exits 0 on unknown keys and only warns: any output is a finding.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr

    misspelt = tmp_path / "misspelt.service"
    misspelt.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes"))
    assert "Unknown key" in _verify(misspelt).stderr  # the check above can fail


def test_systemd_unit_runs_the_daemon_sandboxed_with_reload_and_secrets():
    unit = _unit()
    assert unit["Type"] == ["simple"]
    assert unit["ExecStart"] == ["/opt/warningshot/.venv/bin/warningshot -c /etc/warningshot/warningshot.toml run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartSec"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # a config error is not retried
    assert unit["User"] == ["warningshot"]
    assert unit["StateDirectory"] == ["warningshot"] and unit["ConfigurationDirectory"] == ["warningshot"]
    assert unit["EnvironmentFile"] == ["-/etc/warningshot/secrets.env"]
    assert "/var/lib/warningshot" in unit["ReadWritePaths"][0].split()
    for key, value in {
        "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "LockPersonality": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert unit[key] == [value], key
    assert "@system-service" in unit["SystemCallFilter"]
    assert "MemoryDenyWriteExecute" not in unit


# -- compose ----------------------------------------------------------------------


def test_compose_runs_warningshot_next_to_dovecot():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"warningshot", "dovecot"}
    ws, dovecot = services["warningshot"], services["dovecot"]
    assert (DEPLOY / ws["build"]["context"] / ws["build"]["dockerfile"]).resolve() == REPO / "Dockerfile"
    assert (DEPLOY / dovecot["build"] / "Dockerfile").exists()
    assert ws["depends_on"]["dovecot"]["condition"] == "service_healthy"
    assert set(compose["volumes"]) >= {"state", "mail", "dovecot-tls"}
    mounts = {m.split(":")[1]: m.split(":")[0] for m in ws["volumes"]}
    assert mounts["/var/lib/warningshot"] == "state"
    assert mounts["/etc/warningshot/warningshot.toml"] == "./warningshot.toml"
    assert (DEPLOY / "warningshot.toml").exists()
    seed = next(m.split(":")[0] for m in dovecot["volumes"] if m.split(":")[1] == "/seed")
    assert list((DEPLOY / seed).glob("*.eml"))
    assert ws["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]
    assert f"127.0.0.1:{DEFAULT_PORT}/healthz" in " ".join(ws["healthcheck"]["test"])
    assert ws["environment"]["WARNINGSHOT_CONFIG"] == "/etc/warningshot/warningshot.toml"


def test_compose_config_loads_and_points_at_the_dovecot_service(monkeypatch):
    compose = _compose()
    ws, dovecot = compose["services"]["warningshot"], compose["services"]["dovecot"]
    env = ws["environment"]
    # The admin token comes from the shell that runs compose; compose refuses to start without it.
    assert "${WARNINGSHOT_ADMIN_TOKEN:?" in env["WARNINGSHOT_API__ADMIN_TOKENS"]
    for key, value in env.items():
        monkeypatch.setenv(key, re.sub(r"\$\{WARNINGSHOT_ADMIN_TOKEN:\?[^}]*\}", ADMIN_TOKEN, value))
    settings = load_settings(DEPLOY / "warningshot.toml")
    (mailbox,) = settings.mailboxes
    assert mailbox.host == "dovecot" and mailbox.security == "tls" and mailbox.effective_port == 993
    assert password_env(mailbox.name) in env
    # The demo user and password are the ones Dovecot knows.
    users = (DEPLOY / "dovecot" / "users").read_text()
    assert f"{mailbox.username}:{{PLAIN}}{env[password_env(mailbox.name)]}" in users
    # The CA file is the certificate the dovecot service writes into the shared volume.
    ws_mounts = {m.split(":")[0]: m.split(":")[1] for m in ws["volumes"]}
    dovecot_mounts = {m.split(":")[0]: m.split(":")[1] for m in dovecot["volumes"]}
    assert str(mailbox.tls_ca_file.parent) == ws_mounts["dovecot-tls"] == dovecot_mounts["dovecot-tls"]
    assert "dovecot.crt" in (DEPLOY / "dovecot" / "entrypoint.sh").read_text()
    # State goes to the volume, not next to the read-only config file.
    assert settings.store.url == "sqlite:////var/lib/warningshot/warningshot.db"
    registry = getattr(settings.model, "registry", None)  # model versions made by `warningshot retrain`
    assert registry is None or str(registry).startswith("/var/lib/warningshot/")
    assert settings.api.enabled and settings.api.host == "0.0.0.0" and settings.api.port == DEFAULT_PORT


def test_dovecot_demo_config_is_valid():
    doveconf = shutil.which("doveconf") or "/usr/bin/doveconf"
    if not Path(doveconf).exists():
        pytest.skip("Dovecot is not installed")
    result = subprocess.run([doveconf, "-c", str(DEPLOY / "dovecot" / "dovecot.conf"), "-n"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    settings = subprocess.run([doveconf, "-c", str(DEPLOY / "dovecot" / "dovecot.conf"),
                               "ssl", "disable_plaintext_auth", "auth_mechanisms"],
                              capture_output=True, text=True, timeout=30).stdout
    # Passwords travel only inside TLS, on 993 (the plain 143 listener is off).
    assert "ssl = required" in settings and "disable_plaintext_auth = yes" in settings
    assert "auth_mechanisms = plain login" in settings
    assert re.search(r"inet_listener imap \{\s*port = 0\s*\}", result.stdout)


# -- Dockerfile ---------------------------------------------------------------------


def test_dockerfile_agrees_with_the_settings_defaults():
    final = _dockerfile_final_stage()
    by_instruction: dict[str, list[str]] = {}
    for line in final:
        instruction, _, rest = line.partition(" ")
        by_instruction.setdefault(instruction.upper(), []).append(rest.strip())
    # Not root: the warningshot user, by the numeric id useradd gave it (Kubernetes' runAsNonRoot needs a number).
    uid = re.search(r"useradd [^&]*--uid (\d+)[^&]* warningshot", " ".join(by_instruction["RUN"])).group(1)
    (user,) = by_instruction["USER"]
    assert user.split(":")[0] in {uid, "warningshot"} and uid != "0"
    assert by_instruction["EXPOSE"] == [str(DEFAULT_PORT)]
    (healthcheck,) = by_instruction["HEALTHCHECK"]
    assert f"http://127.0.0.1:{DEFAULT_PORT}/healthz" in healthcheck
    volumes = " ".join(by_instruction["VOLUME"])
    assert "/var/lib/warningshot" in volumes and "/etc/warningshot" in volumes
    env = " ".join(by_instruction["ENV"])
    assert "WARNINGSHOT_CONFIG=/etc/warningshot/warningshot.toml" in env
    assert by_instruction["CMD"] == ['["warningshot", "run"]']


# -- deploy/oauth2-token.py: the token command of docs/oauth2.md --------------------------

TOKEN_HELPER = DEPLOY / "oauth2-token.py"


class _FakeTokenEndpoint:
    """An OAuth2 token endpoint on 127.0.0.1 that records the forms posted to it."""

    def __init__(self, answers: list[tuple[int, dict]]) -> None:
        import http.server
        import threading
        import urllib.parse

        self.forms: list[dict[str, str]] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                endpoint.forms.append(dict(urllib.parse.parse_qsl(body)))
                status, answer = answers.pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _helper(*args: str, secret: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **({"OAUTH2_CLIENT_SECRET": secret} if secret else {})}
    return subprocess.run([sys.executable, str(TOKEN_HELPER), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_token_command_refreshes_and_keeps_a_rotated_refresh_token(tmp_path):
    refresh = tmp_path / "refresh"
    refresh.write_text("1//refresh-one\n")
    endpoint = _FakeTokenEndpoint([(200, {"access_token": "ya29.access-1", "expires_in": 3599}),
                                   (200, {"access_token": "ya29.access-2", "refresh_token": "1//refresh-two"})])
    try:
        args = ("access", "--provider", "google", "--client-id", "cid.apps.googleusercontent.com",
                "--refresh-token-file", str(refresh), "--token-url", endpoint.url)
        first = _helper(*args, secret="client-secret-x")
        assert first.returncode == 0 and first.stdout == "ya29.access-1\n", first.stderr
        assert endpoint.forms[0] == {"grant_type": "refresh_token", "refresh_token": "1//refresh-one",
                                     "client_id": "cid.apps.googleusercontent.com",
                                     "client_secret": "client-secret-x"}
        second = _helper(*args, secret="client-secret-x")
        assert second.stdout == "ya29.access-2\n"
        assert refresh.read_text() == "1//refresh-two\n" and (refresh.stat().st_mode & 0o077) == 0
    finally:
        endpoint.close()


def test_token_command_app_only_and_errors_without_tokens(tmp_path):
    endpoint = _FakeTokenEndpoint([
        (200, {"access_token": "eyJ.app-only", "token_type": "Bearer"}),
        (400, {"error": "invalid_grant", "error_description": "AADSTS70000: grant expired"}),
    ])
    try:
        app = _helper("access", "--provider", "microsoft", "--tenant", "contoso.onmicrosoft.com",
                      "--client-id", "app-id", "--client-credentials", "--token-url", endpoint.url, secret="s3cr3t")
        assert app.returncode == 0 and app.stdout == "eyJ.app-only\n", app.stderr
        assert endpoint.forms[0]["grant_type"] == "client_credentials"
        assert endpoint.forms[0]["scope"] == "https://outlook.office365.com/.default"
        refresh = tmp_path / "refresh"
        refresh.write_text("0.refresh-secret")
        bad = _helper("access", "--provider", "microsoft", "--client-id", "app-id",
                      "--refresh-token-file", str(refresh), "--token-url", endpoint.url)
        assert bad.returncode == 1 and bad.stdout == ""
        assert "invalid_grant" in bad.stderr and "refresh-secret" not in bad.stderr
        assert endpoint.forms[1]["scope"] == "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    finally:
        endpoint.close()


def test_token_helper_authorize_saves_the_refresh_token(tmp_path):
    import urllib.parse
    import urllib.request

    endpoint = _FakeTokenEndpoint([(200, {"access_token": "a", "refresh_token": "1//from-consent"})])
    refresh = tmp_path / "state" / "refresh"
    proc = subprocess.Popen(
        [sys.executable, str(TOKEN_HELPER), "authorize", "--provider", "google", "--client-id", "cid",
         "--refresh-token-file", str(refresh), "--token-url", endpoint.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"OAUTH2_CLIENT_SECRET": "cs"},
    )
    try:
        url = ""
        while "accounts.google.com" not in url:
            url = proc.stderr.readline()
            assert url, "no authorization address printed"
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url.strip()).query))
        assert query["scope"] == "https://mail.google.com/" and query["access_type"] == "offline"
        assert query["code_challenge_method"] == "S256" and query["redirect_uri"].startswith("http://127.0.0.1:")
        callback = f"{query['redirect_uri']}?{urllib.parse.urlencode({'code': 'c0de', 'state': query['state']})}"
        urllib.request.urlopen(callback, timeout=10).read()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert refresh.read_text() == "1//from-consent\n"
        form = endpoint.forms[0]
        assert form["grant_type"] == "authorization_code" and form["code"] == "c0de" and form["code_verifier"]
    finally:
        if proc.poll() is None:
            proc.kill()
        endpoint.close()
