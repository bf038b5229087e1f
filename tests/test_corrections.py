"""Corrections from the mail client, against a real Dovecot and the daemon as a process.

An agent changes keywords or moves mail in an ordinary IMAP session (as a
mail client would); the daemon's correction sync records the new labels.
"""

from __future__ import annotations

import pytest
from conftest import deliver, flags_by_message_id, imap, make_mail, wait_for, write_config
from sqlalchemy import select

from service.api.repository import feedback_export, save_feedback
from service.corrections import judge
from service.settings import TaggingSettings
from service.store import MessageRecord, Store
from service.store.api_tables import Feedback

SCANNED = "WarningShot/Scanned"
# The sync logs each pass at DEBUG; the tests count passes instead of sleeping.
DEBUG = {"WARNINGSHOT_LOGGING__LEVEL": "DEBUG"}
ABUSE_FOLDER = "WarningShot/Abusive"
ROUTES = f"""
[corrections]
interval_seconds = {{interval}}
use_condstore = {{condstore}}

[tagging.routes.abusive]
keyword = "Abusive"
folder = "{ABUSE_FOLDER}"
mode = "move"
"""


def tagging() -> TaggingSettings:
    return TaggingSettings.model_validate({"routes": {"abusive": {"keyword": "Abusive", "folder": ABUSE_FOLDER,
                                                                  "mode": "move"}}})


# -- the rules, on their own ---------------------------------------------------------------


def test_removing_a_label_keyword_removes_the_label():
    verdict = judge(frozenset({"extortion"}), folder="INBOX", keywords=frozenset(), before=None, own=True,
                    action={"keywords": [SCANNED, "Extortion"]}, watched=["INBOX"], tagging=tagging())
    assert verdict.labels == frozenset()
    assert [str(c) for c in verdict.changes] == ["-extortion: keyword Extortion removed in INBOX"]


def test_a_keyword_still_on_the_message_does_not_undo_an_earlier_correction():
    # An admin cleared the label through the API; the keyword the daemon set is still there, unchanged.
    verdict = judge(frozenset(), folder="INBOX", keywords=frozenset({"Extortion"}), before=None, own=True,
                    action={"keywords": [SCANNED, "Extortion"]}, watched=["INBOX"], tagging=tagging())
    assert verdict.labels == frozenset() and verdict.changes == ()


def test_a_message_filed_into_a_label_folder_gets_the_label_and_its_keyword():
    verdict = judge(frozenset(), folder=ABUSE_FOLDER, keywords=frozenset(), before=None, own=False,
                    action={"keywords": [SCANNED]}, watched=["INBOX"], tagging=tagging())
    assert verdict.labels == {"abusive"} and verdict.add_keywords == ("Abusive",)


def test_the_copy_the_daemon_filed_itself_is_no_correction():
    verdict = judge(frozenset({"abusive"}), folder=ABUSE_FOLDER, keywords=frozenset({"Abusive"}), before=None,
                    own=False, action={"keywords": [SCANNED, "Abusive"], "move_to": ABUSE_FOLDER},
                    watched=["INBOX"], tagging=tagging())
    assert verdict.labels == {"abusive"} and verdict.changes == () and not verdict.remove_keywords


def test_a_message_moved_back_out_of_its_label_folder_loses_the_label_and_keyword():
    verdict = judge(frozenset({"abusive"}), folder="INBOX", keywords=frozenset({SCANNED, "Abusive"}), before=None,
                    own=False, action={"keywords": [SCANNED, "Abusive"], "move_to": ABUSE_FOLDER},
                    watched=["INBOX"], tagging=tagging())
    assert verdict.labels == frozenset() and verdict.remove_keywords == ("Abusive",)


# -- against Dovecot ----------------------------------------------------------------------------


def feedback_by_message_id(store: Store) -> dict[str, tuple[list[str], str]]:
    with store.session() as s:
        rows = s.execute(select(MessageRecord.message_id, Feedback.labels, Feedback.source)
                         .join(Feedback, Feedback.message_id == MessageRecord.id))
        return {mid: (labels, source) for mid, labels, source in rows}


def record_id(store: Store, message_id: str) -> int:
    """The stored record of a handled message, once it is marked done.

    The daemon marks a record done only after its tags are on the server, so a
    test that saw the keyword may still be a moment ahead of the store.
    """
    def done() -> int | None:
        with store.session() as s:
            return s.scalars(select(MessageRecord.id).where(MessageRecord.message_id == message_id,
                                                            MessageRecord.state == "done")).one_or_none()
    wait_for(lambda: done() is not None, 15, what=f"{message_id} done in the store")
    return done()


def agent_session(server, folder: str = "INBOX"):
    client = imap(server)
    client.select_folder(folder)
    return client


def uid_of(client, message_id: str) -> int:
    uids = client.search(["HEADER", "Message-ID", message_id])
    assert len(uids) == 1, (message_id, uids)
    return uids[0]


def start(dovecot, daemon_process, tmp_path, *, condstore: bool = True, interval: float = 0.5):
    config = write_config(tmp_path, dovecot, ROUTES.format(interval=interval, condstore=str(condstore).lower()))
    daemon = daemon_process(config, DEBUG)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    return daemon, store


def wait_tagged(dovecot, n: int, folder: str = "INBOX") -> None:
    mid = f"<ticket-{n}@example.org>"
    wait_for(lambda: SCANNED in flags_by_message_id(dovecot, folder).get(mid, set()), 20, what=f"{mid} tagged")


@pytest.mark.parametrize("condstore", [True, False], ids=["condstore", "bounded-sync"])
def test_agents_keyword_and_folder_changes_are_recorded_as_corrections(dovecot, daemon_process, tmp_path, condstore):
    if condstore:
        client = imap(dovecot)
        assert b"CONDSTORE" in client.capabilities()  # the server must really offer it for this case
        client.logout()
    daemon, store = start(dovecot, daemon_process, tmp_path, condstore=condstore)
    deliver(dovecot, make_mail(1, body="Refund now or I post everywhere that you scam people [[extortion]]"))
    deliver(dovecot, make_mail(2, body="You are useless idiots [[abusive]]"))
    deliver(dovecot, make_mail(3, body="The export button does nothing."))
    deliver(dovecot, make_mail(4, body="How do I change my invoice address?"))
    for n in (1, 3, 4):
        wait_tagged(dovecot, n)
    wait_tagged(dovecot, 2, ABUSE_FOLDER)

    agent = agent_session(dovecot)
    # 1: the agent removes the Extortion keyword; 3: adds Abusive to a clean mail.
    agent.remove_flags([uid_of(agent, "<ticket-1@example.org>")], ["Extortion"])
    agent.add_flags([uid_of(agent, "<ticket-3@example.org>")], ["Abusive"])
    # 4: the agent files a clean mail into the label folder.
    agent.move([uid_of(agent, "<ticket-4@example.org>")], ABUSE_FOLDER)
    # 2: the agent moves the flagged mail back to the inbox.
    agent.select_folder(ABUSE_FOLDER)
    agent.move([uid_of(agent, "<ticket-2@example.org>")], "INBOX")
    agent.logout()

    expected = {
        "<ticket-1@example.org>": ([], "imap"),
        "<ticket-2@example.org>": ([], "imap"),
        "<ticket-3@example.org>": (["abusive"], "imap"),
        "<ticket-4@example.org>": (["abusive"], "imap"),
    }
    wait_for(lambda: feedback_by_message_id(store) == expected, 30, what="four corrections")

    # The client shows the corrected labels: the returned mail lost its keyword, the filed one got it.
    wait_for(lambda: "Abusive" not in flags_by_message_id(dovecot).get("<ticket-2@example.org>", {"Abusive"}), 10)
    wait_for(lambda: "Abusive" in flags_by_message_id(dovecot, ABUSE_FOLDER).get("<ticket-4@example.org>", set()), 10)
    # Nothing moves the returned mail back, and no further pass changes a correction.
    seen = _passes(daemon)
    wait_for(lambda: _passes(daemon) >= seen + 3, 15, what="three more sync passes")
    assert "<ticket-2@example.org>" in flags_by_message_id(dovecot)
    assert feedback_by_message_id(store) == expected
    assert daemon.log().count("corrected by an agent") == 4

    # The corrections are training data, with the mail's text although store_bodies is off.
    rows = {r["id"]: r for r in feedback_export(store, None)}
    exported = rows[f"ws-{record_id(store, '<ticket-1@example.org>')}"]
    assert "scam people" in exported["body"] and exported["labels"] == [] and exported["hard_negative"]
    with store.session() as s:
        assert all(r.body is None for r in s.scalars(select(MessageRecord)))
    assert "scam people" not in daemon.log()  # the text is stored, not logged
    assert daemon.terminate() == 0


def test_an_api_correction_is_not_undone_by_unrelated_flag_changes(dovecot, daemon_process, tmp_path):
    daemon, store = start(dovecot, daemon_process, tmp_path)
    deliver(dovecot, make_mail(1, body="Pay me back or see you in the reviews [[extortion]]"))
    wait_tagged(dovecot, 1)
    mid = "<ticket-1@example.org>"
    save_feedback(store, record_id(store, mid), [], note="a fair complaint", actor="admin")
    # The agent reads the mail (\Seen changes, the Extortion keyword stays where the daemon put it).
    agent = agent_session(dovecot)
    agent.add_flags([uid_of(agent, mid)], ["\\Seen"])
    seen = _passes(daemon)
    wait_for(lambda: _passes(daemon) >= seen + 3, 15, what="three more sync passes")
    assert feedback_by_message_id(store) == {mid: ([], "api")}
    # A real change afterwards still counts.
    agent.remove_flags([uid_of(agent, mid)], ["Extortion"])
    agent.add_flags([uid_of(agent, mid)], ["Abusive"])
    agent.logout()
    wait_for(lambda: feedback_by_message_id(store) == {mid: (["abusive"], "imap")}, 15)


def _passes(daemon) -> int:
    return daemon.log().count("correction sync pass")


def test_a_change_made_while_the_daemon_was_stopped_is_recorded_after_restart(dovecot, daemon_process, tmp_path):
    daemon, store = start(dovecot, daemon_process, tmp_path)
    deliver(dovecot, make_mail(1, body="Fix it or I call my lawyer tomorrow [[legal_threat]]"))
    wait_tagged(dovecot, 1)
    wait_for(lambda: _passes(daemon) >= 2, 15, what="the sync to see the tagged mail")
    assert daemon.terminate() == 0

    agent = agent_session(dovecot)
    agent.remove_flags([uid_of(agent, "<ticket-1@example.org>")], ["LegalThreat"])
    agent.logout()
    daemon = daemon_process(tmp_path / "warningshot.toml", DEBUG)
    wait_for(lambda: feedback_by_message_id(store) == {"<ticket-1@example.org>": ([], "imap")}, 20)


def test_migration_0004_builds_exactly_the_tables_the_code_declares(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import service.store.correction_tables  # noqa: F401 - registers the tables on Base
    from service.store.tables import Base

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    with store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = ("folder_sync", "keyword_sightings", "feedback")
    assert [d for d in diffs if any(name in str(d) for name in mine)] == []
