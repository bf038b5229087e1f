"""POST /v1/thresholds/preview against a hand count of seeded scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

NOW = datetime.now(UTC)

# (language, abusive, extortion, legal_threat, hours ago, extra fields)
SEED = {
    1: ("en", 0.40, 0.60, 0.10, 1, {}),
    2: ("en", 0.20, 0.90, 0.70, 2, {}),
    3: ("he", 0.55, 0.10, 0.10, 3, {}),
    4: ("he", 0.65, 0.10, 0.10, 4, {}),
    5: ("fr", 0.35, 0.10, 0.10, 5, {}),
    6: (None, 0.10, 0.10, 0.50, 6, {}),
    7: ("en", 0.90, 0.10, 0.10, 40 * 24, {}),  # outside 30 days
    8: ("en", 0.0, 0.0, 0.0, 7, {"scores": None, "state": "quarantined"}),  # never scored
    9: ("en", 0.31, 0.10, 0.10, 29 * 24, {}),
    10: ("en", 0.45, 0.10, 0.10, 8, {"labels": ["abusive"]}),  # labelled under older thresholds
}

PROPOSAL = {"default": {"abusive": 0.3, "extortion": 0.8}, "per_language": {"he": {"abusive": 0.6}}}


@pytest.fixture
def seeded(api):
    ids = {}
    for key, (lang, abusive, extortion, legal, hours, extra) in SEED.items():
        fields = {"language": lang, "scores": {"abusive": abusive, "extortion": extortion, "legal_threat": legal},
                  "received_at": NOW - timedelta(hours=hours), "subject": f"message {key}", **extra}
        ids[key] = api.seed(**fields)
    return api, ids


def counts(labels: tuple[int, int, int], messages: int, flagged: int) -> dict:
    return {"messages": messages, "flagged": flagged,
            "by_label": dict(zip(("abusive", "extortion", "legal_threat"), labels, strict=True))}


def test_preview_matches_a_hand_count(seeded):
    api, ids = seeded
    r = api.admin.post("/v1/thresholds/preview", json={"thresholds": PROPOSAL, "days": 30})
    assert r.status_code == 200, r.text
    body = r.json()
    # Messages 1-6, 9 and 10: 7 is too old, 8 has no scores.
    assert body["messages"] == 8
    # Now (model thresholds 0.5): 1 ext; 2 ext+legal; 3 abu; 4 abu; 6 legal.
    assert body["current"]["flagged"] == 5
    assert body["current"]["by_label"] == {"abusive": 2, "extortion": 2, "legal_threat": 2}
    assert body["current"]["by_language"] == {
        "en": counts((0, 2, 1), 4, 2), "fr": counts((0, 0, 0), 1, 0),
        "he": counts((2, 0, 0), 2, 2), "und": counts((0, 0, 1), 1, 1),
    }
    # Proposed: abusive 0.3 (he 0.6), extortion 0.8 -> 1 abu; 2 ext+legal; 4 abu; 5 abu; 6 legal; 9 abu; 10 abu.
    assert body["proposed"]["flagged"] == 7
    assert body["proposed"]["by_label"] == {"abusive": 5, "extortion": 1, "legal_threat": 2}
    assert body["proposed"]["by_language"] == {
        "en": counts((3, 1, 1), 4, 4), "fr": counts((1, 0, 0), 1, 1),
        "he": counts((1, 0, 0), 2, 1), "und": counts((0, 0, 1), 1, 1),
    }
    assert body["changed"] == 5
    assert body["changes_truncated"] is False
    changes = {c["id"]: (c["before"], c["after"]) for c in body["changes"]}
    assert changes == {
        ids[1]: (["extortion"], ["abusive"]),
        ids[3]: (["abusive"], []),
        ids[5]: ([], ["abusive"]),
        ids[9]: ([], ["abusive"]),
        ids[10]: ([], ["abusive"]),
    }
    # Newest first, with enough to recognise the message.
    assert [c["id"] for c in body["changes"]] == [ids[1], ids[3], ids[5], ids[10], ids[9]]
    first = body["changes"][0]
    assert first["subject"] == "message 1" and first["sender"].endswith("@example.org")
    assert first["language"] == "en" and first["scores"]["abusive"] == 0.4


def test_preview_changes_nothing_and_is_not_audited(seeded):
    api, _ = seeded
    api.admin.post("/v1/thresholds/preview", json={"thresholds": PROPOSAL})
    assert api.admin.get("/v1/thresholds").json()["version"] == 0
    assert api.admin.get("/v1/audit").json()["items"] == []


def test_preview_window_and_truncated_change_list(seeded):
    api, ids = seeded
    body = api.admin.post("/v1/thresholds/preview", json={"thresholds": PROPOSAL, "days": 1, "max_changes": 2}).json()
    assert body["messages"] == 7  # 9 (29 days) and 7 (40 days) fall outside
    assert body["changed"] == 4
    assert body["changes_truncated"] is True
    assert [c["id"] for c in body["changes"]] == [ids[1], ids[3]]


def test_after_saving_the_proposal_the_preview_shows_no_change(seeded):
    api, _ = seeded
    api.admin.put("/v1/thresholds", json=PROPOSAL)
    body = api.admin.post("/v1/thresholds/preview", json={"thresholds": PROPOSAL}).json()
    assert body["changed"] == 0
    assert body["current"] == body["proposed"]
    # Going back to nothing stored shows the reverse of the first preview.
    back = api.admin.post("/v1/thresholds/preview", json={"thresholds": {}}).json()
    assert back["proposed"]["flagged"] == 5 and back["current"]["flagged"] == 7


@pytest.mark.parametrize("body", [
    {"thresholds": PROPOSAL, "days": 0},
    {"thresholds": PROPOSAL, "days": 366},
    {"thresholds": PROPOSAL, "max_changes": -1},
    {"thresholds": {"default": {"abusive": 3}}},
    {"days": 30},
    {"thresholds": PROPOSAL, "extra": 1},
])
def test_invalid_preview_requests_are_422(api, body):
    assert api.admin.post("/v1/thresholds/preview", json=body).status_code == 422
