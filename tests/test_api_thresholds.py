"""Thresholds over the API: layers, validation, persistence across restarts, the audit log, live effect."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from service.api.live_thresholds import LiveThresholds
from service.scoring import effective_thresholds


def test_get_shows_every_layer_and_the_effective_result(api_server):
    api = api_server(thresholds={"extortion": 0.7, "per_language": {"he": {"abusive": 0.6}}})
    body = api.viewer.get("/v1/thresholds").json()
    assert body["model"]["default"] == {"abusive": 0.5, "extortion": 0.5, "legal_threat": 0.5}
    assert body["settings"]["default"]["extortion"] == 0.7
    assert body["stored"]["default"] == {"abusive": None, "extortion": None, "legal_threat": None}
    assert body["effective"] == {
        "default": {"abusive": 0.5, "extortion": 0.7, "legal_threat": 0.5},
        "per_language": {"he": {"abusive": 0.6}},
    }
    assert body["version"] == 0 and body["updated_by"] is None


def test_put_overrides_settings_and_model_per_label_and_language(api_server):
    api = api_server(thresholds={"extortion": 0.7, "per_language": {"he": {"abusive": 0.6}}})
    r = api.admin.put("/v1/thresholds", json={
        "default": {"extortion": 0.8, "legal_threat": 0.3},
        "per_language": {"he": {"abusive": 0.65, "legal_threat": 0.9}, "ar": {"extortion": 0.85}},
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["effective"] == {
        "default": {"abusive": 0.5, "extortion": 0.8, "legal_threat": 0.3},
        "per_language": {"ar": {"extortion": 0.85}, "he": {"abusive": 0.65, "legal_threat": 0.9}},
    }
    assert body["version"] >= 1
    assert body["updated_by"].startswith("admin:")
    # PUT replaces: what is left out falls back to the layers underneath.
    body = api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.4}}).json()
    assert body["effective"] == {
        "default": {"abusive": 0.4, "extortion": 0.7, "legal_threat": 0.5},
        "per_language": {"he": {"abusive": 0.6}},
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"default": {"abusive": 1.5}}, ["body", "default", "abusive"]),
        ({"default": {"abusive": -0.01}}, ["body", "default", "abusive"]),
        ({"default": {"abusive": "high"}}, ["body", "default", "abusive"]),
        ({"default": {"abusiv": 0.5}}, ["body", "default", "abusiv"]),
        ({"per_language": {"EN": {"abusive": 0.5}}}, ["body", "per_language", "EN", "[key]"]),
        ({"per_language": {"english": {"abusive": 0.5}}}, ["body", "per_language", "english", "[key]"]),
        ({"per_language": {"he": {"legal_threat": 2}}}, ["body", "per_language", "he", "legal_threat"]),
        ({"defaults": {}}, ["body", "defaults"]),
        ({"expected_version": -1}, ["body", "expected_version"]),
        ([0.5], ["body"]),
    ],
)
def test_invalid_thresholds_are_a_clear_422_and_change_nothing(api, body, where):
    r = api.admin.put("/v1/thresholds", json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"] == where for e in errors), errors
    assert all(e["msg"] for e in errors)
    assert api.admin.get("/v1/thresholds").json()["version"] == 0


def test_nan_and_infinity_are_refused(api):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        r = api.admin.put("/v1/thresholds", content=b'{"default": {"abusive": ' + literal + b"}}",
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 422, literal


def test_stored_thresholds_survive_a_restart_of_the_server(api):
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.77}, "per_language": {"fr": {"extortion": 0.66}}})
    before = api.admin.get("/v1/thresholds").json()
    api.restart()
    after = api.viewer.get("/v1/thresholds").json()
    assert after == before
    assert after["effective"]["default"]["abusive"] == 0.77
    assert after["effective"]["per_language"] == {"fr": {"extortion": 0.66}}
    assert len(api.viewer.get("/v1/audit").json()["items"]) == 1


def test_every_change_is_audited_with_who_when_old_and_new(api):
    t0 = datetime.now().astimezone()
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.6}})
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.6}})  # no change: no entry
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.7}, "per_language": {"he": {"abusive": 0.9}}})
    items = api.viewer.get("/v1/audit", params={"action": "thresholds.update"}).json()["items"]
    assert [i["new"] for i in items] == [
        {"default": {"abusive": 0.7}, "per_language": {"he": {"abusive": 0.9}}},
        {"default": {"abusive": 0.6}, "per_language": {}},
    ]
    assert [i["old"] for i in items] == [
        {"default": {"abusive": 0.6}, "per_language": {}},
        {"default": {}, "per_language": {}},
    ]
    for item in items:
        assert item["actor"].startswith("admin:")
        assert datetime.fromisoformat(item["at"]) >= t0.replace(microsecond=0)


def test_audit_is_paginated_newest_first(api):
    for value in (0.1, 0.2, 0.3, 0.4, 0.5):
        api.admin.put("/v1/thresholds", json={"default": {"abusive": value}})
    seen, cursor = [], None
    while True:
        page = api.viewer.get("/v1/audit", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["new"]["default"]["abusive"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [0.5, 0.4, 0.3, 0.2, 0.1]
    assert api.viewer.get("/v1/audit", params={"limit": 0}).status_code == 422
    assert api.viewer.get("/v1/audit", params={"action": "DROP TABLE"}).status_code == 422


def test_expected_version_guards_against_lost_updates(api):
    version = api.admin.get("/v1/thresholds").json()["version"]
    first = api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.6}, "expected_version": version})
    assert first.status_code == 200
    r = api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.9}, "expected_version": version})
    assert r.status_code == 409
    assert api.admin.get("/v1/thresholds").json()["effective"]["default"]["abusive"] == 0.6


def test_the_pipelines_thresholds_follow_a_put_for_the_very_next_message(api):
    # The daemon hands the pipeline the app's LiveThresholds: a PUT invalidates it at once.
    assert api.thresholds().for_label("abusive", "en") == 0.5
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.9}, "per_language": {"he": {"abusive": 0.95}}})
    assert api.thresholds().for_label("abusive", "en") == 0.9
    assert api.thresholds().for_label("abusive", "he") == 0.95


def test_another_process_sees_a_change_within_a_second(api):
    # A daemon running beside `warningshot api` shares only the store.
    other = LiveThresholds(api.store, lambda: effective_thresholds(api.classifier, api.settings), ttl=0.5)
    assert other().for_label("legal_threat", "en") == 0.5
    api.admin.put("/v1/thresholds", json={"default": {"legal_threat": 0.35}})
    deadline = time.monotonic() + 1.0
    while other().for_label("legal_threat", "en") != 0.35:
        assert time.monotonic() < deadline, "stored thresholds not picked up within a second"
        time.sleep(0.05)


def test_classify_uses_the_thresholds_in_force(api):
    text = "You are clowns [[abusive]] and I want my refund today."
    assert api.admin.post("/v1/classify", json={"text": text}).json()["labels"] == ["abusive"]
    api.admin.put("/v1/thresholds", json={"default": {"abusive": 0.99}})
    r = api.admin.post("/v1/classify", json={"text": text}).json()
    assert r["labels"] == []
    assert r["thresholds"]["abusive"] == 0.99
