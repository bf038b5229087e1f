"""Drafts and senders over the API: the playbook's approval flow, escalation state and reset."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import ADMIN_TOKEN, deliver, wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_playbook_daemon import ENGLISH, folder, mail, playbook_config

from service.local_dovecot import free_port
from service.store.playbook_tables import Draft, Sender, SenderEvent, SenderMessage

SUPPORT = "support@example.com"


@pytest.fixture
def playbook_api(api_server, smtp_server):
    # IMAP points at a closed port: sending works, filing in Sent fails fast and is recorded.
    api = api_server(
        mailboxes=[{"name": "support", "host": "127.0.0.1", "port": free_port(), "security": "plain",
                    "username": "support", "password": "imap-password-123", "address": SUPPORT,
                    "timeout_seconds": 2}],
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "plain", "max_attempts": 2,
              "retry_delay_seconds": 0.01},
    )
    return api, smtp_server


def seed_sender(api, address: str = "jane.doe@example.org", state: str = "warned",
                warned: str | None = "abusive") -> int:
    now = datetime.now(UTC)
    with api.store.session() as s:
        sender = Sender(address=address, display_name="Jane Doe", state=state, warned_type=warned,
                        will_candidate=False, state_changed_at=now, created_at=now, updated_at=now)
        s.add(sender)
        s.flush()
        s.add(SenderMessage(sender_id=sender.id, mailbox="support", message_key=f"<k-{sender.id}@example.org>",
                            message_id=f"<k-{sender.id}@example.org>", record_id=None, opens_conversation=True,
                            labels=["abusive"], scores={"abusive": 0.97}, evidence={"abusive": "You clowns."},
                            plan={"template": "warning_abusive"}, received_at=now))
        s.add(SenderEvent(sender_id=sender.id, kind="warned", detail={"offence": "abusive"}, created_at=now))
        return sender.id


def seed_draft(api, sender_id: int, *, state: str = "appended", n: int = 1,
               text: str = "Hello Jane,\n\nLet us keep this respectful.\n") -> int:
    now = datetime.now(UTC) + timedelta(seconds=n)
    with api.store.session() as s:
        draft = Draft(
            sender_id=sender_id, mailbox="support", source_key=f"<src-{n}@example.org>",
            source_message_id=f"<src-{n}@example.org>", record_id=None, template="warning_abusive", language="en",
            direction="ltr", state=state, message_id=f"<draft-{n}@example.com>", from_address=SUPPORT,
            from_name="Acme", to_address="jane.doe@example.org", to_name="Jane Doe", subject="Re: Shipping rates",
            in_reply_to=f"<src-{n}@example.org>", references=[f"<src-{n}@example.org>"], text=text,
            note={"labels": ["abusive"], "evidence": {"abusive": "You clowns."}}, litmus={"abusive": 0.02},
            edited=False, send_attempts=0, created_at=now, updated_at=now,
        )
        s.add(draft)
        s.flush()
        return draft.id


def test_drafts_list_filter_paginate_and_read(playbook_api):
    api, _ = playbook_api
    sender = seed_sender(api)
    ids = [seed_draft(api, sender, n=n, state="appended" if n % 2 else "sent") for n in range(1, 6)]
    page = api.viewer.get("/v1/drafts", params={"limit": 2}).json()
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]
    assert page["next_offset"] == 2
    seen = [d["id"] for d in page["items"]]
    while page["next_offset"] is not None:
        page = api.viewer.get("/v1/drafts", params={"limit": 2, "offset": page["next_offset"]}).json()
        seen += [d["id"] for d in page["items"]]
    assert seen == ids[::-1]
    waiting = api.viewer.get("/v1/drafts", params={"state": "appended"}).json()["items"]
    assert [d["id"] for d in waiting] == [ids[4], ids[2], ids[0]]
    one = api.viewer.get(f"/v1/drafts/{ids[0]}").json()
    assert one["text"].startswith("Hello Jane,") and one["note"]["labels"] == ["abusive"]
    assert one["to_address"] == "jane.doe@example.org" and "raw" not in one
    assert api.viewer.get("/v1/drafts/999").status_code == 404
    assert api.viewer.get("/v1/drafts", params={"state": "lost"}).status_code == 422
    assert api.viewer.post(f"/v1/drafts/{ids[0]}/approve").status_code == 403


def test_approving_sends_once_records_who_and_audits(playbook_api):
    api, smtp = playbook_api
    draft = seed_draft(api, seed_sender(api))
    r = api.admin.post(f"/v1/drafts/{draft}/approve")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "sent" and body["approved_by"].startswith("admin:") and body["sent_at"]
    assert "filing" in body["error"]  # sent; the closed IMAP port only kept it out of Sent
    assert len(smtp.received) == 1
    out = smtp.received[0].message()
    assert out["Message-ID"] == "<draft-1@example.com>" and smtp.received[0].rcpt_tos == ("jane.doe@example.org",)
    again = api.admin.post(f"/v1/drafts/{draft}/approve")
    assert again.status_code == 409
    assert len(smtp.received) == 1
    audit = api.viewer.get("/v1/audit", params={"action": "drafts.approve"}).json()["items"]
    assert audit[0]["target"] == f"draft:{draft}"
    assert audit[0]["old"] == {"state": "appended"} and audit[0]["new"] == {"state": "sent", "edited": False}


def test_an_edited_text_is_sent_and_a_hostile_edit_is_refused(playbook_api):
    api, smtp = playbook_api
    sender = seed_sender(api)
    hostile, fine = seed_draft(api, sender, n=1), seed_draft(api, sender, n=2)
    r = api.admin.post(f"/v1/drafts/{hostile}/approve", json={"text": "Fine, you clowns [[abusive]]."})
    assert r.status_code == 422
    assert "abusive" in r.json()["detail"]
    assert api.viewer.get(f"/v1/drafts/{hostile}").json()["state"] == "appended"
    r = api.admin.post(f"/v1/drafts/{fine}/approve", json={"text": "Hello Jane,\n\nWe have refunded you.\n"})
    assert r.status_code == 200 and r.json()["edited"] is True
    assert "We have refunded you." in smtp.received[-1].message().get_body(("plain",)).get_content()
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 100_001}, {"txt": "hi"}):
        assert api.admin.post(f"/v1/drafts/{hostile}/approve", json=bad).status_code == 422, bad


def test_an_smtp_failure_is_a_502_and_the_draft_can_be_approved_again(playbook_api):
    api, smtp = playbook_api
    draft = seed_draft(api, seed_sender(api))
    smtp.refuse = 2  # both attempts
    r = api.admin.post(f"/v1/drafts/{draft}/approve")
    assert r.status_code == 502
    assert api.viewer.get(f"/v1/drafts/{draft}").json()["state"] == "send_failed"
    assert api.admin.post(f"/v1/drafts/{draft}/approve").json()["state"] == "sent"
    assert len(smtp.received) == 1


def test_rejecting_needs_a_reason_and_is_final(playbook_api):
    api, smtp = playbook_api
    draft = seed_draft(api, seed_sender(api), state="ready")
    assert api.admin.post(f"/v1/drafts/{draft}/reject", json={}).status_code == 422
    assert api.admin.post(f"/v1/drafts/{draft}/reject", json={"reason": " "}).status_code == 422
    r = api.admin.post(f"/v1/drafts/{draft}/reject", json={"reason": "customer already called us"})
    assert r.status_code == 200
    assert r.json()["state"] == "rejected" and r.json()["reject_reason"] == "customer already called us"
    assert api.admin.post(f"/v1/drafts/{draft}/approve").status_code == 409
    assert api.admin.post(f"/v1/drafts/{draft}/reject", json={"reason": "again"}).status_code == 409
    assert api.admin.post("/v1/drafts/4242/reject", json={"reason": "x"}).status_code == 404
    assert smtp.received == []
    entry = api.viewer.get("/v1/audit", params={"action": "drafts.reject"}).json()["items"][0]
    assert entry["new"] == {"state": "rejected", "reason": "customer already called us"}


def test_drafts_pending_is_in_the_metrics(playbook_api):
    api, _ = playbook_api
    sender = seed_sender(api)
    for n, state in enumerate(["ready", "appended", "send_failed", "sent", "rejected", "blocked"], 1):
        seed_draft(api, sender, n=n, state=state)
    families = {f.name: f for f in text_string_to_metric_families(api.anonymous.get("/metrics").text)}
    assert families["warningshot_drafts_pending"].samples[0].value == 3


def test_sender_state_history_and_reset(playbook_api):
    api, _ = playbook_api
    sender = seed_sender(api)
    seed_draft(api, sender)
    # Any spelling of the address finds the one sender.
    body = api.viewer.get("/v1/senders/Jane.Doe+shop@Example.org").json()
    assert body["address"] == "jane.doe@example.org"
    assert (body["state"], body["warned_type"]) == ("warned", "abusive")
    assert [m["evidence"] for m in body["messages"]] == [{"abusive": "You clowns."}]
    assert [e["kind"] for e in body["events"]] == ["warned"]
    assert len(body["drafts"]) == 1
    assert api.viewer.post("/v1/senders/jane.doe@example.org/reset").status_code == 403
    r = api.admin.post("/v1/senders/jane.doe@example.org/reset", json={"reason": "apologised by phone"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["warned_type"]) == ("clear", None)
    assert r.json()["events"][-1]["kind"] == "reset" and r.json()["events"][-1]["actor"].startswith("admin:")
    entry = api.viewer.get("/v1/audit", params={"action": "senders.reset"}).json()["items"][0]
    assert entry["old"] == {"state": "warned", "warned_type": "abusive"}
    assert entry["new"] == {"state": "clear", "reason": "apologised by phone"}
    assert api.admin.post("/v1/senders/jane.doe@example.org/reset").status_code == 200  # no body needed
    assert api.viewer.get("/v1/senders/nobody@example.org").status_code == 404
    assert api.admin.post("/v1/senders/nobody@example.org/reset").status_code == 404
    assert api.viewer.get("/v1/senders/not-an-address").status_code == 422


def test_the_daemons_api_approves_a_real_draft_end_to_end(dovecot, smtp_server, daemon_process, tmp_path):
    port = free_port()
    config = playbook_config(tmp_path, dovecot, smtp_server, daemon=f"\n[api]\nenabled = true\nport = {port}\n")
    deliver(dovecot, mail("t1", f"{ENGLISH}\nYou are a bunch of clowns [[abusive]]"))
    daemon = daemon_process(config, {"WARNINGSHOT_API__ADMIN_TOKENS": f'["{ADMIN_TOKEN}"]'})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          timeout=30)

    def waiting() -> list[dict]:
        try:
            return client.get("/v1/drafts", params={"state": "appended"}).json()["items"]
        except httpx.TransportError:
            return []

    wait_for(lambda: len(waiting()) == 1, 30, what="a draft waiting for approval")
    (draft,) = waiting()
    assert draft["to_address"] == "jane.doe@example.org"
    assert client.get(f"/v1/messages/{draft['record_id']}").json()["labels"] == ["abusive"]
    sender = client.get("/v1/senders/jane.doe@example.org").json()
    assert sender["state"] == "warned"
    r = client.post(f"/v1/drafts/{draft['id']}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "sent" and r.json()["error"] is None
    assert len(smtp_server.received) == 1
    assert smtp_server.received[0].message()["In-Reply-To"] == "<t1@example.org>"
    assert folder(dovecot, "Drafts") == []
    assert [m["Message-ID"] for _, m in folder(dovecot, "Sent")] == [draft["message_id"]]
    time.sleep(0.2)
    client.close()
    assert daemon.terminate() == 0
