"""Every hostile or broken .eml through the real daemon and Dovecot: nothing lost, no crash."""

from __future__ import annotations

import sqlite3

from conftest import REPO, deliver, imap, wait_for, write_config

CORPUS = sorted((REPO / "tests" / "data" / "eml").glob("*.eml"))


def test_hostile_corpus_is_handled_without_losing_a_message(dovecot, daemon_process, tmp_path):
    assert len(CORPUS) >= 30
    for path in CORPUS:
        raw = path.read_bytes()
        # IMAP APPEND needs CRLF line ends; the files keep the bytes as written.
        deliver(dovecot, raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n"))
    client = imap(dovecot)
    client.select_folder("INBOX", readonly=True)
    delivered = len(client.search(["ALL"]))
    client.logout()

    daemon = daemon_process(write_config(tmp_path, dovecot))

    def finished() -> int:
        try:
            with sqlite3.connect(tmp_path / "store.db") as db:
                query = "SELECT count(*) FROM messages WHERE state IN ('done', 'skipped', 'quarantined')"
                return db.execute(query).fetchone()[0]
        except sqlite3.OperationalError:  # the daemon has not created its tables yet
            return -1

    wait_for(lambda: (tmp_path / "store.db").exists() and finished() == delivered, 120, 0.5, "every message handled")
    assert daemon.alive()
    with sqlite3.connect(tmp_path / "store.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        quarantined = [uid for (uid,) in db.execute("SELECT uid FROM messages WHERE state = 'quarantined' AND error != ''")]
        assert db.execute("SELECT count(*) FROM messages WHERE body IS NOT NULL").fetchone()[0] == 0
    assert sum(states.values()) == delivered
    # Only what is not a mail at all is refused; the rest is parsed, however broken.
    assert len(quarantined) == states.get("quarantined", 0) <= 2, states

    client = imap(dovecot)
    client.select_folder("INBOX", readonly=True)
    untagged = set(client.search(["UNKEYWORD", "WarningShot/Scanned"]))
    errors = set(client.search(["KEYWORD", "WarningShot/Error"]))
    client.logout()
    # Every message carries a visible outcome: scanned, or marked as an error.
    assert untagged == errors == set(quarantined)
