"""Model reloads (SIGHUP, POST /v1/model/reload) while mail keeps arriving: nothing lost, nothing twice."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from conftest import ADMIN_TOKEN, deliver, flags_by_message_id, make_mail, wait_for, write_config
from sqlalchemy import func, select

from service.local_dovecot import free_port
from service.store import Checkpoint, MessageRecord, Store

SCANNED = "WarningShot/Scanned"


def reload_config(tmp_path, dovecot, port: int):
    return write_config(tmp_path, dovecot, f"\n[api]\nenabled = true\nport = {port}\n")


def start(tmp_path, dovecot, daemon_process, version: str):
    model_file = tmp_path / "model-version"
    model_file.write_text(version)
    port = free_port()
    env = {"WARNINGSHOT_API__ADMIN_TOKENS": f'["{ADMIN_TOKEN}"]', "WS_TEST_MODEL_FILE": str(model_file),
           # Slow enough that reloads land while batches are being classified.
           "WS_TEST_DELAY": "0.02"}
    daemon = daemon_process(reload_config(tmp_path, dovecot, port), env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          timeout=30)

    def ready() -> bool:
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 20, what="the daemon's API")
    return daemon, client, model_file


def test_sighup_and_api_reloads_during_a_stream_keep_every_message_exactly_once(dovecot, daemon_process, tmp_path):
    daemon, client, model_file = start(tmp_path, dovecot, daemon_process, "v1")
    assert client.get("/v1/model").json()["version"] == "v1"
    total = 60

    def stream() -> None:
        for n in range(1, total + 1):
            body = "You clowns [[abusive]]" if n % 3 == 0 else "Where is my invoice?"
            deliver(dovecot, make_mail(n, body=body))
            time.sleep(0.05)

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(0.5)
    model_file.write_text("v2")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "model reloaded: v2" in daemon.log(), 20, what="the SIGHUP reload")
    model_file.write_text("v3")
    r = client.post("/v1/model/reload")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "v3"
    sender.join()

    wait_for(lambda: sum(SCANNED in f for f in flags_by_message_id(dovecot).values()) == total, 60,
             what="every message tagged")
    flags = flags_by_message_id(dovecot)
    assert all(("Abusive" in flags[f"<ticket-{n}@example.org>"]) == (n % 3 == 0) for n in range(1, total + 1))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    wait_for(lambda: _checkpoint(store) == total, 10, what="the checkpoint")
    with store.session() as s:
        rows = s.execute(select(MessageRecord.message_id, func.count()).group_by(MessageRecord.message_id))
        per_message = {message_id: count for message_id, count in rows}
        states = set(s.scalars(select(MessageRecord.state)))
        models = {r.message_id: r.action["model"] for r in s.scalars(select(MessageRecord))}
    assert len(per_message) == total and set(per_message.values()) == {1}
    assert states == {"done"}
    # Each message names the one model that decided it; the last arrived after the second reload.
    assert set(models.values()) <= {"v1", "v2", "v3"}
    assert models[f"<ticket-{total}@example.org>"] == "v3"
    assert client.get("/v1/model").json()["version"] == "v3"
    audit = client.get("/v1/audit", params={"action": "model.reload"}).json()
    assert [(e["old"], e["new"]) for e in audit["items"]] == [({"version": "v2"}, {"version": "v3"})]
    assert daemon.terminate() == 0


def test_a_model_that_fails_to_load_leaves_the_current_one_working(dovecot, daemon_process, tmp_path):
    daemon, client, model_file = start(tmp_path, dovecot, daemon_process, "v1")
    model_file.write_text("broken")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "model reload failed; keeping the current model" in daemon.log(), 20)
    r = client.post("/v1/model/reload")
    assert r.status_code == 500 and "the current model stays" in r.json()["detail"]
    assert client.get("/v1/model").json()["version"] == "v1"

    deliver(dovecot, make_mail(1, body="Idiots, all of you [[abusive]]"))
    wait_for(lambda: "Abusive" in flags_by_message_id(dovecot).get("<ticket-1@example.org>", set()), 20)
    assert daemon.alive()
    assert daemon.terminate() == 0


def _checkpoint(store: Store) -> int:
    with store.session() as s:
        cp = s.get(Checkpoint, ("support", "INBOX"))
        return cp.last_uid if cp else 0


def test_the_standalone_api_reloads_its_own_model(api_server, tmp_path, monkeypatch):
    model_file = tmp_path / "model-version"
    model_file.write_text("v7")
    monkeypatch.setenv("WS_TEST_MODEL_FILE", str(model_file))
    api = api_server(model={"factory": "marker_classifier:build"})
    assert api.viewer.get("/v1/model").json()["version"] == "MarkerClassifier"
    assert api.viewer.post("/v1/model/reload").status_code == 403  # viewers may only read
    r = api.admin.post("/v1/model/reload")
    assert r.status_code == 200 and r.json() == {"loaded": True, "version": "v7",
                                                 "labels": ["abusive", "extortion", "legal_threat"], "error": None}
    r = api.admin.post("/v1/classify", json={"text": "You idiots [[abusive]]"})
    assert r.status_code == 200 and r.json()["labels"] == ["abusive"]
