"""On-demand classification, statistics, health, readiness and metrics."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import wait_for
from marker_classifier import MarkerClassifier
from prometheus_client.parser import text_string_to_metric_families

from service.api.context import ModelHandle
from service.watcher import Backoff

NOW = datetime.now(UTC)
MAILBOXES = [{"name": "support", "host": "imap.example.com", "username": "support", "password": "imap-password-123",
              "folders": ["INBOX", "Escalations"]}]


# -- classify --------------------------------------------------------------------


def test_classify_scores_a_text_like_the_pipeline(api):
    r = api.admin.post("/v1/classify", json={
        "subject": "Refund",
        "text": "Give me my money back today.\nOr everyone hears about it [[extortion]]\n\n> old quote [[abusive]]",
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["extortion"]  # the quoted line is not the sender's new text
    assert body["scores"]["extortion"] == 0.97 and body["scores"]["abusive"] == 0.02
    assert body["evidence"] == {"extortion": "Or everyone hears about it [[extortion]]"}
    assert body["thresholds"] == {"abusive": 0.5, "extortion": 0.5, "legal_threat": 0.5}
    assert body["language"] == "en"
    assert "Extortion" in body["action"]["keywords"]


def test_classify_applies_per_language_thresholds(api):
    api.admin.put("/v1/thresholds", json={"per_language": {"de": {"legal_threat": 0.98}}})
    text = "Mein Anwalt wird sich bei Ihnen melden [[legal_threat]]"
    assert api.admin.post("/v1/classify", json={"text": text, "language": "de"}).json()["labels"] == []
    assert api.admin.post("/v1/classify", json={"text": text, "language": "en"}).json()["labels"] == ["legal_threat"]


@pytest.mark.parametrize("body", [
    {}, {"text": ""}, {"text": "x" * 200_001}, {"text": 42}, {"text": "hi", "language": "German"},
    {"text": "hi", "subject": "s" * 2001}, {"text": "hi", "extra": True},
])
def test_invalid_classify_requests_are_422(api, body):
    assert api.admin.post("/v1/classify", json=body).status_code == 422


def test_lone_surrogates_in_json_are_a_422_not_a_crash(api):
    record = api.seed()
    for path, raw in [
        ("/v1/classify", b'{"text": "hello \\udc80 there"}'),
        (f"/v1/messages/{record}/feedback", b'{"labels": [], "note": "\\ud800"}'),
    ]:
        r = api.admin.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (path, r.text)
        assert "unicode" in r.json()["detail"][0]["msg"].lower()


def test_a_text_the_model_fails_on_is_a_422_not_a_crash(api):
    r = api.admin.post("/v1/classify", json={"text": "this one [[crash]]es the model"})
    assert r.status_code == 422
    assert "could not score" in r.json()["detail"]
    assert api.admin.post("/v1/classify", json={"text": "fine"}).status_code == 200


# -- stats -------------------------------------------------------------------------


def test_stats_count_per_label_language_day_and_state(api_server):
    api = api_server(mailboxes=MAILBOXES)
    seeded = [
        ("en", ["abusive"], "done", NOW - timedelta(minutes=5)),
        ("en", [], "done", NOW - timedelta(minutes=6)),
        ("he", ["extortion", "legal_threat"], "done", NOW - timedelta(minutes=7)),
        ("fr", ["abusive"], "done", NOW - timedelta(days=2)),
        ("en", ["abusive"], "done", NOW - timedelta(days=40)),  # outside the window
        (None, None, "quarantined", NOW - timedelta(days=2)),
        ("en", None, "processing", NOW - timedelta(minutes=10)),
    ]
    for lang, labels, state, at in seeded:
        api.seed(language=lang, labels=labels, state=state, received_at=at, updated_at=at)
    api.store.set_checkpoint("support", "INBOX", 7, 42)
    body = api.viewer.get("/v1/stats", params={"days": 30}).json()
    assert body["messages"] == 6
    assert body["flagged"] == 3
    assert body["by_label"] == {"abusive": 2, "extortion": 1, "legal_threat": 1}
    assert body["by_state"] == {"done": 4, "quarantined": 1, "processing": 1}
    assert body["by_language"]["en"] == {
        "messages": 3, "flagged": 1, "by_label": {"abusive": 1, "extortion": 0, "legal_threat": 0}}
    assert body["by_language"]["he"]["by_label"] == {"abusive": 0, "extortion": 1, "legal_threat": 1}
    assert body["by_language"]["und"]["messages"] == 1
    days = {d["day"]: d for d in body["by_day"]}
    recent = {(NOW - timedelta(minutes=m)).date().isoformat() for m in (5, 6, 7, 10)}
    assert set(days) == recent | {(NOW - timedelta(days=2)).date().isoformat()}
    two_days_ago = days[(NOW - timedelta(days=2)).date().isoformat()]
    assert (two_days_ago["messages"], two_days_ago["flagged"]) == (2, 1)
    assert body["lag"]["pending"] == 1
    # Stored 10 minutes before NOW, which was taken when this module was imported.
    since_now = (datetime.now(UTC) - NOW).total_seconds()
    assert 590 < body["lag"]["oldest_pending_seconds"] < 610 + since_now
    assert 250 < body["lag"]["seconds_since_last_handled"] < 400 + since_now
    assert body["mailboxes"][0]["state"] == "unknown"
    assert [(m["mailbox"], m["folder"], m["checkpoint_at"] is not None) for m in body["mailboxes"]] == [
        ("support", "INBOX", True), ("support", "Escalations", False)]
    assert api.viewer.get("/v1/stats", params={"days": 1}).json()["messages"] <= 4
    assert api.viewer.get("/v1/stats", params={"days": 0}).status_code == 422


# -- health and readiness ----------------------------------------------------------------


class FakeWatcher:
    """The attributes of a FolderWatcher the API reads, with a real Backoff."""

    def __init__(self, folder: str, state: str = "connected") -> None:
        self.settings = SimpleNamespace(name="support")
        self.folder, self.state, self.reconnects, self.last_error = folder, state, 0, None
        self.backoff = Backoff(0.2, 1.0)

    def fail(self) -> None:
        self.state, self.last_error = "reconnecting", "connection refused"
        self.reconnects += 1
        self.backoff.next_delay()


def test_readyz_follows_the_watchers(api_server):
    watchers = [FakeWatcher("INBOX"), FakeWatcher("Escalations", "starting")]
    api = api_server(daemon_state=SimpleNamespace(watchers=watchers))
    body = api.anonymous.get("/readyz").json()
    assert body["ready"] is True
    assert body["checks"]["mailboxes"]["ok"] is True
    # Reconnecting within the backoff (delays 0.2, 0.4, 0.8 s) still counts as ready.
    for _ in range(3):
        watchers[1].fail()
        assert api.anonymous.get("/readyz").status_code == 200
    watchers[1].fail()  # the delay has reached its maximum: the server keeps failing
    r = api.anonymous.get("/readyz")
    assert r.status_code == 503
    assert "support/Escalations" in r.json()["checks"]["mailboxes"]["detail"]
    assert "connection refused" in r.json()["checks"]["mailboxes"]["detail"]
    stats = api.viewer.get("/v1/stats").json()["mailboxes"]
    assert [(m["folder"], m["state"], m["reconnects"]) for m in stats] == [
        ("INBOX", "connected", 0), ("Escalations", "reconnecting", 4)]
    watchers[1].state = "connected"
    watchers[1].backoff.reset()
    assert api.anonymous.get("/readyz").status_code == 200
    assert api.anonymous.get("/healthz").status_code == 200


def test_model_routes_wait_for_the_model_and_readyz_says_so(api_server):
    model = ModelHandle()
    api = api_server(classifier=model)
    r = api.anonymous.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["model"] == {"ok": False, "detail": "the model is still loading"}
    assert api.admin.get("/v1/thresholds").status_code == 503
    assert api.admin.post("/v1/classify", json={"text": "hi"}).status_code == 503
    assert api.viewer.get("/v1/messages").status_code == 200  # the queue needs no model
    assert api.anonymous.get("/healthz").status_code == 200

    def slow_load() -> MarkerClassifier:
        time.sleep(0.2)
        return MarkerClassifier()

    model.load_in_background(slow_load)
    wait_for(lambda: api.anonymous.get("/readyz").status_code == 200, 5)
    assert api.admin.post("/v1/classify", json={"text": "hi"}).status_code == 200


def test_a_model_that_fails_to_load_is_reported(api_server):
    def broken() -> MarkerClassifier:
        raise OSError("model.safetensors: no such file")

    model = ModelHandle()
    model.load_in_background(broken).join()
    api = api_server(classifier=model)
    r = api.anonymous.get("/readyz").json()
    assert r["checks"]["model"]["ok"] is False
    assert "no such file" in r["checks"]["model"]["detail"]


def test_an_unreachable_store_is_503_everywhere_it_matters(api):
    db = Path(api.settings.store.url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.mkdir(db)  # a directory where the database was: every new connection fails
    api.store.engine.dispose()
    r = api.anonymous.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["store"]["ok"] is False
    r = api.viewer.get("/v1/messages")
    assert r.status_code == 503 and r.json() == {"detail": "the store is unavailable; try again"}
    assert api.anonymous.get("/healthz").status_code == 200


# -- metrics -----------------------------------------------------------------------------


def test_metrics_are_prometheus_text_with_every_family(api):
    ctx = api.app.state.ctx
    ctx.metrics.messages.labels("support", "done").inc(3)
    ctx.metrics.flagged.labels("abusive").inc()
    ctx.metrics.classify_seconds.observe(0.03)
    ctx.metrics.reconnects.labels("support").inc()
    r = api.anonymous.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name, kind in [
        ("warningshot_messages_handled", "counter"), ("warningshot_messages_flagged", "counter"),
        ("warningshot_processing_errors", "counter"), ("warningshot_messages_quarantined", "counter"),
        ("warningshot_classification_seconds", "histogram"), ("warningshot_imap_reconnects", "counter"),
        ("warningshot_drafts_pending", "gauge"), ("warningshot_imap_connected", "gauge"),
    ]:
        assert families[name].type == kind, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("warningshot_messages_handled_total", (("mailbox", "support"), ("state", "done")))] == 3
    assert samples[("warningshot_messages_flagged_total", (("label", "abusive"),))] == 1
    assert samples[("warningshot_classification_seconds_count", ())] == 1
