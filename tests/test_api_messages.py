"""The review queue (filters, pagination), one message, label feedback and its training export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from classifiers.dataset import load_emails

NOW = datetime.now(UTC)


def scores(abusive: float = 0.02, extortion: float = 0.02, legal: float = 0.02) -> dict[str, float]:
    return {"abusive": abusive, "extortion": extortion, "legal_threat": legal}


@pytest.fixture
def queue(api):
    ids = {
        "abusive_en": api.seed(language="en", labels=["abusive"], scores=scores(0.9), sender="belle@example.org",
                               subject="You clowns", evidence={"abusive": "You are clowns."},
                               received_at=NOW - timedelta(hours=1)),
        "both_he": api.seed(language="he", labels=["extortion", "legal_threat"], scores=scores(0.1, 0.8, 0.9),
                            received_at=NOW - timedelta(hours=2)),
        "clean_en": api.seed(language="en", received_at=NOW - timedelta(hours=3)),
        "old_ext": api.seed(language="fr", labels=["extortion"], scores=scores(0.1, 0.95),
                            received_at=NOW - timedelta(days=10)),
        "quarantined": api.seed(language=None, labels=None, scores=None, state="quarantined", error="parse failed",
                                received_at=NOW - timedelta(hours=4)),
    }
    return api, ids


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_queue_lists_newest_first_with_what_a_reviewer_needs(queue):
    api, ids = queue
    body = api.viewer.get("/v1/messages").json()
    assert [i["id"] for i in body["items"]] == [
        ids["abusive_en"], ids["both_he"], ids["clean_en"], ids["quarantined"], ids["old_ext"]]
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["sender"] == "belle@example.org"
    assert first["subject"] == "You clowns"
    assert first["language"] == "en"
    assert first["scores"]["abusive"] == 0.9
    assert first["labels"] == ["abusive"]
    assert first["evidence"] == {"abusive": "You are clowns."}
    assert first["status"] == "done"
    assert "body" not in first


@pytest.mark.parametrize(("params", "expected"), [
    ({"label": "abusive"}, ["abusive_en"]),
    ({"label": "legal_threat"}, ["both_he"]),
    ({"label": "extortion"}, ["both_he", "old_ext"]),
    ({"label": "none"}, ["clean_en"]),
    ({"lang": "he"}, ["both_he"]),
    ({"lang": "en", "label": "abusive"}, ["abusive_en"]),
    ({"status": "quarantined"}, ["quarantined"]),
    ({"flagged": True}, ["abusive_en", "both_he", "old_ext"]),
    ({"flagged": False}, ["clean_en", "quarantined"]),
    ({"sender": "BELLE@example.org"}, ["abusive_en"]),
    ({"since": (NOW - timedelta(days=1)).isoformat(), "label": "extortion"}, ["both_he"]),
    ({"until": (NOW - timedelta(days=1)).isoformat()}, ["old_ext"]),
])
def test_queue_filters(queue, params, expected):
    api, ids = queue
    assert ids_of(api.viewer.get("/v1/messages", params=params)) == [ids[name] for name in expected]


def test_since_without_offset_means_utc(queue):
    api, ids = queue
    naive_utc = (NOW - timedelta(minutes=90)).replace(tzinfo=None).isoformat()
    assert ids_of(api.viewer.get("/v1/messages", params={"since": naive_utc})) == [ids["abusive_en"]]
    shifted = (NOW - timedelta(minutes=90)).astimezone(__import__("datetime").timezone(timedelta(hours=5))).isoformat()
    assert ids_of(api.viewer.get("/v1/messages", params={"since": shifted})) == [ids["abusive_en"]]


def test_pagination_walks_every_message_once(api):
    # Several messages share a received_at: the cursor must still not skip or repeat.
    same_time = NOW - timedelta(hours=1)
    seeded = [api.seed(received_at=same_time if n % 3 == 0 else NOW - timedelta(minutes=n)) for n in range(23)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = api.viewer.get("/v1/messages", params=params).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert sorted(seen) == sorted(seeded)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"label": "rude"}, {"lang": "English"},
    {"status": "lost"}, {"since": "yesterday"}, {"since": "0001-01-01T00:00:00+05:00"},
    {"cursor": "not-a-cursor"}, {"cursor": "!!!"}, {"flagged": "maybe"},
])
def test_invalid_queue_parameters_are_a_clear_422(api, params):
    r = api.viewer.get("/v1/messages", params=params)
    assert r.status_code == 422, (params, r.text)
    detail = r.json()["detail"]
    assert detail and all(d["msg"] for d in detail)
    assert detail[0]["loc"][0] == "query"


def test_one_message_with_its_body_when_bodies_are_stored(api_server):
    api = api_server(store={"store_bodies": True})
    record = api.seed(body="Dear support, ...")
    body = api.viewer.get(f"/v1/messages/{record}").json()
    assert body["body"] == "Dear support, ..."
    assert api.viewer.get("/v1/messages/999999").status_code == 404
    assert api.viewer.get("/v1/messages/0").status_code == 422
    assert api.viewer.get("/v1/messages/99999999999999999999999").status_code == 422


def test_feedback_corrects_labels_and_shows_in_the_queue(queue):
    api, ids = queue
    url = f"/v1/messages/{ids['clean_en']}/feedback"
    r = api.admin.post(url, json={"labels": ["extortion"], "note": "subtle threat"})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == ["extortion"]
    assert r.json()["model_labels"] == []
    # A second correction replaces the first.
    api.admin.post(url, json={"labels": ["legal_threat", "extortion", "extortion"]})
    item = next(i for i in api.viewer.get("/v1/messages").json()["items"] if i["id"] == ids["clean_en"])
    assert item["feedback_labels"] == ["extortion", "legal_threat"]
    assert item["labels"] == []  # what the model said stays on record
    audit = api.viewer.get("/v1/audit", params={"action": "feedback.labels"}).json()["items"]
    assert [a["new"]["labels"] for a in audit] == [["extortion", "legal_threat"], ["extortion"]]
    assert audit[0]["old"] == {"labels": ["extortion"], "note": "subtle threat", "source": "api"}
    assert audit[0]["target"] == f"message:{ids['clean_en']}"


@pytest.mark.parametrize("body", [
    {"labels": ["rude"]}, {"labels": "abusive"}, {}, {"labels": [], "note": "x" * 2001}, {"labels": [], "extra": 1},
])
def test_invalid_feedback_is_422(queue, body):
    api, ids = queue
    assert api.admin.post(f"/v1/messages/{ids['clean_en']}/feedback", json=body).status_code == 422


def test_feedback_on_an_unknown_message_is_404(api):
    assert api.admin.post("/v1/messages/424242/feedback", json={"labels": []}).status_code == 404


def test_feedback_export_is_training_data_the_loader_reads(api_server, tmp_path):
    api = api_server(store={"store_bodies": True})
    flagged = api.seed(language="he", labels=["abusive"], subject="שירות גרוע", body="אתם עלובים, תחזירו כסף")
    missed = api.seed(language="en", labels=[], subject="Refund", body="Refund me or I post everywhere.")
    api.seed(language="en", labels=["abusive"])  # no feedback: not exported
    api.admin.post(f"/v1/messages/{flagged}/feedback", json={"labels": []})
    api.admin.post(f"/v1/messages/{missed}/feedback", json={"labels": ["extortion"]})
    r = api.viewer.get("/v1/feedback/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert rows == [
        {"id": f"ws-{flagged}", "lang": "he", "variety": "", "scenario": f"ws-s{flagged}", "product": "",
         "subject": "שירות גרוע", "body": "אתם עלובים, תחזירו כסף", "labels": [], "hard_negative": True,
         "model_labels": ["abusive"]},
        {"id": f"ws-{missed}", "lang": "en", "variety": "", "scenario": f"ws-s{missed}", "product": "",
         "subject": "Refund", "body": "Refund me or I post everywhere.", "labels": ["extortion"],
         "hard_negative": False, "model_labels": []},
    ]
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(r.content)
    examples = load_emails([path])
    assert [(e.id, e.targets) for e in examples] == [
        (f"ws-{flagged}", (0.0, 0.0, 0.0)), (f"ws-{missed}", (0.0, 1.0, 0.0))]
    in_a_minute = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = api.viewer.get("/v1/feedback/export", params={"since": in_a_minute})
    assert later.text == ""


def test_feedback_export_has_empty_bodies_when_bodies_are_not_stored(queue):
    api, ids = queue
    api.admin.post(f"/v1/messages/{ids['abusive_en']}/feedback", json={"labels": ["abusive"]})
    row = json.loads(api.viewer.get("/v1/feedback/export").text)
    assert row["body"] == "" and row["subject"] == "You clowns" and row["labels"] == ["abusive"]
