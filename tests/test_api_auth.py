"""The admin API's security: tokens, roles, open or protected probes, body limits, CORS, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
from conftest import ADMIN_TOKEN, REPO, SUPPORT, VIEWER_TOKEN, wait_for

from service.errors import ConfigError
from service.local_dovecot import free_port
from service.settings import load_settings

READ_ONLY = ["/v1/thresholds", "/v1/audit", "/v1/messages", "/v1/feedback/export", "/v1/stats", "/v1/model"]
WRITES = [
    ("PUT", "/v1/thresholds", {"default": {"abusive": 0.8}}),
    ("POST", "/v1/thresholds/preview", {"thresholds": {}}),
    ("POST", "/v1/classify", {"text": "hello"}),
    ("POST", "/v1/messages/1/feedback", {"labels": []}),
    ("POST", "/v1/model/reload", {}),
]


def v1_operations(api) -> list[tuple[str, str]]:
    """Every /v1 operation in the OpenAPI document, with sample path values."""
    paths = api.anonymous.get("/openapi.json").json()["paths"]
    ops = []
    for path, methods in paths.items():
        if path.startswith("/v1/"):
            concrete = path.replace("{record_id}", "1").replace("{draft_id}", "1").replace("{address}", "a@example.org")
            ops += [(method.upper(), concrete) for method in methods]
    return ops


def test_every_v1_route_refuses_a_missing_malformed_or_wrong_token(api):
    operations = v1_operations(api)
    assert len(operations) == 18
    bad_headers = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": "Bearer not-a-configured-token-at-all"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    ]
    for method, path in operations:
        for headers in bad_headers:
            r = api.anonymous.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


def test_viewer_reads_and_is_refused_every_write(api):
    api.seed()
    for path in READ_ONLY:
        assert api.viewer.get(path).status_code == 200, path
    for method, path, body in WRITES:
        r = api.viewer.request(method, path, json=body)
        assert r.status_code == 403, (method, path)
        assert "admin" in r.json()["detail"]
    # Nothing was written by the refused requests.
    assert api.admin.get("/v1/audit").json()["items"] == []


def test_viewer_is_refused_every_non_get_operation_in_the_schema(api):
    for method, path in v1_operations(api):
        if method != "GET":
            assert api.viewer.request(method, path, json={}).status_code == 403, (method, path)


def test_admin_may_read_and_write(api):
    record = api.seed()
    for path in READ_ONLY:
        assert api.admin.get(path).status_code == 200, path
    for method, path, body in WRITES:
        r = api.admin.request(method, path.replace("/1/", f"/{record}/"), json=body)
        assert r.status_code == 200, (method, path, r.text)


def test_audit_names_the_token_by_fingerprint_never_by_value(api):
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.9}})
    entry = api.viewer.get("/v1/audit").json()["items"][0]
    assert entry["actor"].startswith("admin:")
    assert ADMIN_TOKEN not in str(entry)


def test_probes_and_metrics_are_open_by_default(api):
    assert api.anonymous.get("/healthz").json() == {"status": "ok"}
    assert api.anonymous.get("/readyz").status_code == 200
    assert api.anonymous.get("/metrics").status_code == 200
    assert api.anonymous.get("/docs").status_code == 200


def test_probes_and_metrics_can_require_a_token(api_server):
    api = api_server(api={"protect_health": True, "protect_metrics": True})
    for path in ("/healthz", "/readyz", "/metrics"):
        assert api.anonymous.get(path).status_code == 401, path
        assert api.anonymous.get(path, headers={"Authorization": "Bearer wrong-token-123456789"}).status_code == 401
        assert api.viewer.get(path).status_code == 200, path


def test_request_bodies_are_size_limited(api_server):
    api = api_server(api={"max_body_bytes": 1024})
    big = {"thresholds": {}, "padding": "x" * 2000}
    r = api.admin.post("/v1/thresholds/preview", json=big)
    assert r.status_code == 413
    # Without a Content-Length the body is counted as it arrives.
    chunks = iter([b'{"text": "', b"y" * 800, b"y" * 800, b'"}'])
    r = api.admin.post("/v1/classify", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert api.admin.post("/v1/classify", json={"text": "small enough"}).status_code == 200


def test_invalid_json_is_a_clear_422(api):
    r = api.admin.put("/v1/thresholds", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_cors_is_off_by_default_and_on_for_configured_origins(api_server):
    preflight = {"Origin": "https://admin.example.com", "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = api_server()
    r = closed.anonymous.options("/v1/thresholds", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in closed.viewer.get("/v1/thresholds", headers={"Origin": "https://admin.example.com"}).headers
    opened = api_server(api={"cors_origins": ["https://admin.example.com"]})
    r = opened.anonymous.options("/v1/thresholds", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "https://admin.example.com"
    r = opened.anonymous.options("/v1/thresholds", headers={**preflight, "Origin": "https://evil.example"})
    assert r.headers.get("access-control-allow-origin") != "https://evil.example"


@pytest.mark.parametrize(
    ("api_section", "problem"),
    [
        ('admin_tokens = ["changeme"]', "placeholder"),
        ('admin_tokens = ["short"]', "at least 16"),
        (f'admin_tokens = ["{ADMIN_TOKEN}"]\nviewer_tokens = ["{ADMIN_TOKEN}"]', "admin and viewer"),
        ("enabled = true", "needs admin_tokens"),
    ],
)
def test_settings_refuse_weak_or_missing_tokens(tmp_path, api_section, problem):
    config = tmp_path / "ws.toml"
    config.write_text(f"[api]\n{api_section}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert problem in str(err.value)
    assert "changeme" not in str(err.value) or problem == "placeholder"


def test_tokens_come_from_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "ws.toml"
    config.write_text("[api]\nport = 9999\n")
    monkeypatch.setenv("WARNINGSHOT_API__ADMIN_TOKENS", f'["{ADMIN_TOKEN}"]')
    settings = load_settings(config)
    assert settings.api.port == 9999
    assert [t.get_secret_value() for t in settings.api.admin_tokens] == [ADMIN_TOKEN]
    assert settings.api.host == "127.0.0.1"


def _api_process(tmp_path, env_extra: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    config = tmp_path / "ws.toml"
    config.write_text(
        f'[model]\nfactory = "marker_classifier:build"\n[store]\nurl = "sqlite:///{tmp_path / "api.db"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARNINGSHOT_")}
    env.update({"PYTHONPATH": f"{SUPPORT}:{REPO}", **env_extra})
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "-c", str(config), "api", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO,
    )


def test_warningshot_api_serves_alone_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    proc = _api_process(tmp_path, {"WARNINGSHOT_API__VIEWER_TOKENS": f'["{VIEWER_TOKEN}"]'}, port)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})

        def ready() -> bool:
            try:
                return client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 20, 0.1, "warningshot api to be ready")
        assert client.get("/v1/thresholds").json()["effective"]["default"]["abusive"] == 0.5
        assert client.put("/v1/thresholds", json={}).status_code == 403
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, output
    assert VIEWER_TOKEN not in output


def test_warningshot_api_refuses_to_start_without_tokens(tmp_path):
    proc = _api_process(tmp_path, {}, free_port())
    output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 2
    assert "no token configured" in output
