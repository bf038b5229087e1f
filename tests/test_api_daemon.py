"""The API inside `warningshot run`, against a real Dovecot: live thresholds, queue, metrics, readiness."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from conftest import ADMIN_TOKEN, REPO, SUPPORT, deliver, flags_by_message_id, make_mail, wait_for, write_config
from prometheus_client.parser import text_string_to_metric_families

from service.local_dovecot import free_port

SCANNED = "WarningShot/Scanned"
TOKENS = {"WARNINGSHOT_API__ADMIN_TOKENS": f'["{ADMIN_TOKEN}"]'}


def api_config(tmp_path, server, port: int):
    return write_config(tmp_path, server, f"\n[api]\nenabled = true\nport = {port}\n")


def status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


def metric_samples(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_api_in_the_daemon_changes_thresholds_for_the_next_message(dovecot, daemon_process, tmp_path):
    port = free_port()
    daemon = daemon_process(api_config(tmp_path, dovecot, port), TOKENS)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          timeout=10)
    wait_for(lambda: status(client, "/readyz") == 200, 20, what="the daemon's API to be ready")
    time.sleep(0.5)  # the watcher is in IDLE now (as in test_daemon.py)

    deliver(dovecot, make_mail(1, body="You useless clowns [[abusive]]"))
    wait_for(lambda: "Abusive" in flags_by_message_id(dovecot).get("<ticket-1@example.org>", set()), 10)

    # Mail arriving while the watcher is busy waits for the next IDLE wake-up; let it settle first.
    wait_for(lambda: [i["status"] for i in client.get("/v1/messages").json()["items"]] == ["done"], 10)
    time.sleep(0.5)
    r = client.put("/v1/thresholds", json={"default": {"abusive": 0.99}})
    assert r.status_code == 200, r.text
    deliver(dovecot, make_mail(2, body="Still clowns, all of you [[abusive]]"))
    wait_for(lambda: SCANNED in flags_by_message_id(dovecot).get("<ticket-2@example.org>", set()), 10)
    assert "Abusive" not in flags_by_message_id(dovecot)["<ticket-2@example.org>"]

    items = client.get("/v1/messages").json()["items"]
    assert [(i["message_id"], i["labels"]) for i in items] == [
        ("<ticket-2@example.org>", []), ("<ticket-1@example.org>", ["abusive"])]
    assert items[0]["action"]["thresholds"]["abusive"] == 0.99
    assert items[1]["evidence"] == {"abusive": "You useless clowns [[abusive]]"}
    assert items[1]["sender"] == "customer1@example.org"

    samples = metric_samples(client)
    assert samples[("warningshot_messages_handled_total", (("mailbox", "support"), ("state", "done")))] == 2
    assert samples[("warningshot_messages_flagged_total", (("label", "abusive"),))] == 1
    assert samples[("warningshot_imap_connected", (("folder", "INBOX"), ("mailbox", "support")))] == 1
    assert samples[("warningshot_classification_seconds_count", ())] >= 2
    stats = client.get("/v1/stats").json()
    assert stats["mailboxes"][0]["state"] == "connected"
    assert stats["by_label"]["abusive"] == 1 and stats["messages"] == 2

    # The server goes away: ready while the watcher backs off, not once retries max out.
    dovecot.kick()
    dovecot.stop()
    wait_for(lambda: status(client, "/readyz") == 503, 20, what="readiness to drop")
    assert "support/INBOX" in client.get("/readyz").json()["checks"]["mailboxes"]["detail"]
    assert client.get("/healthz").status_code == 200
    dovecot.start()
    wait_for(lambda: status(client, "/readyz") == 200, 20, what="readiness to come back")
    client.close()
    assert daemon.terminate() == 0
    assert ADMIN_TOKEN not in daemon.log()
    assert "Still clowns" not in daemon.log()


def test_daemon_refuses_to_start_when_the_api_port_is_taken(dovecot, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = api_config(tmp_path, dovecot, busy.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "-c", str(config), "run"],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{SUPPORT}:{REPO}", **TOKENS},
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )
    assert result.returncode == 2, result.stderr
    assert "api: cannot listen" in result.stderr
