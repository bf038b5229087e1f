"""The playbook's pure parts: the decision function (every path), sender normalisation, the Will window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.playbook.decide import TEMPLATES, PlaybookDecision, decide_playbook
from service.playbook.senders import SenderState, normalise_address
from service.playbook.will import is_will_candidate, message_refs, window_start
from service.settings import WillSettings

CLEAR = SenderState()
WARNED_ABUSIVE = SenderState("warned", "abusive")
WARNED_EXTORTION = SenderState("warned", "extortion")
WARNED_WILL = SenderState("warned", "will")
TERMINATED = SenderState("terminated")
LEGAL = SenderState("legal")


@pytest.mark.parametrize(
    ("labels", "sender", "will", "expected"),
    [
        # nothing to act on
        ((), CLEAR, False, ("none", None, False, CLEAR)),
        ((), WARNED_ABUSIVE, False, ("none", None, False, WARNED_ABUSIVE)),
        # first offence: the warning shot of that type
        (("abusive",), CLEAR, False, ("first_offence", "warning_abusive", False, WARNED_ABUSIVE)),
        (("extortion",), CLEAR, False, ("first_offence", "warning_extortion", False, WARNED_EXTORTION)),
        # an offence after a warning: the termination with that type's explanation
        (("abusive",), WARNED_ABUSIVE, False, ("offence_after_warning", "termination_abusive", False, TERMINATED)),
        (("extortion",), WARNED_ABUSIVE, False, ("offence_after_warning", "termination_extortion", False, TERMINATED)),
        (("abusive",), WARNED_EXTORTION, False, ("offence_after_warning", "termination_abusive", False, TERMINATED)),
        (("abusive",), WARNED_WILL, False, ("offence_after_warning", "termination_abusive", False, TERMINATED)),
        # after termination: walk away, nothing drafted
        (("abusive",), TERMINATED, False, ("after_termination", None, False, TERMINATED)),
        (("legal_threat",), TERMINATED, False, ("legal_threat", "termination_legal", True, LEGAL)),
        # legal threats skip the warning shot, from any state
        (("legal_threat",), CLEAR, False, ("legal_threat", "termination_legal", True, LEGAL)),
        (("legal_threat",), WARNED_ABUSIVE, False, ("legal_threat", "termination_legal", True, LEGAL)),
        # later mail of a legal sender: routed, no new draft, whatever it says
        ((), LEGAL, False, ("legal_sender", None, True, LEGAL)),
        (("abusive",), LEGAL, False, ("legal_sender", None, True, LEGAL)),
        (("legal_threat",), LEGAL, False, ("legal_sender", None, True, LEGAL)),
        # several labels: the strongest path (legal > extortion > abusive)
        (("abusive", "extortion", "legal_threat"), CLEAR, False, ("legal_threat", "termination_legal", True, LEGAL)),
        (("abusive", "extortion"), CLEAR, False, ("first_offence", "warning_extortion", False, WARNED_EXTORTION)),
        (("abusive", "extortion"), WARNED_ABUSIVE, False,
         ("offence_after_warning", "termination_extortion", False, TERMINATED)),
    ],
)
def test_every_path_of_the_decision(labels, sender, will, expected):
    decision = decide_playbook(labels, sender, will_candidate=will, will_drafts=True)
    assert (decision.path, decision.template, decision.route_to_counsel, decision.after) == expected
    assert decision.before == sender
    assert decision.template is None or decision.template in TEMPLATES


def test_will_paths_draft_only_when_enabled():
    # Recorded (and tagged) only: the admin has not enabled Will drafts.
    off = decide_playbook((), CLEAR, will_candidate=True, will_drafts=False)
    assert (off.path, off.template, off.will_candidate, off.after) == ("will_candidate", None, True, CLEAR)
    on = decide_playbook((), CLEAR, will_candidate=True, will_drafts=True)
    assert (on.path, on.template, on.after) == ("first_offence", "warning_will", WARNED_WILL)
    again = decide_playbook((), WARNED_WILL, will_candidate=True, will_drafts=True)
    assert (again.path, again.template, again.after) == ("offence_after_warning", "termination_will", TERMINATED)
    # A label beats the pattern, and the pattern is still recorded.
    both = decide_playbook(("abusive",), CLEAR, will_candidate=True, will_drafts=True)
    assert (both.template, both.will_candidate) == ("warning_abusive", True)
    gone = decide_playbook((), TERMINATED, will_candidate=True, will_drafts=True)
    assert (gone.path, gone.template) == ("after_termination", None)


def test_a_decision_survives_its_record():
    decision = decide_playbook(("abusive",), WARNED_EXTORTION, will_candidate=True, will_drafts=False)
    assert PlaybookDecision.from_record(decision.as_record()) == decision


def test_a_warned_state_needs_its_type():
    with pytest.raises(ValueError):
        SenderState("warned")
    with pytest.raises(ValueError):
        SenderState("banned")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.ORG", "jane.doe@example.org"),
        ("jane.doe+shop@example.org", "jane.doe@example.org"),
        ("<jane.doe+a+b@example.org>", "jane.doe@example.org"),
        ("J.A.N.E.doe+x@GMail.com", "janedoe@gmail.com"),
        ("jane.doe@googlemail.com", "janedoe@gmail.com"),
        ("jane.doe@gmail.com.", "janedoe@gmail.com"),
        ("+tag@example.org", "+tag@example.org"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_sender_normalisation(raw, expected):
    assert normalise_address(raw) == expected


def test_sender_normalisation_follows_the_settings():
    assert normalise_address("Jane.Doe+x@gmail.com", plus=False) == "janedoe+x@gmail.com"
    assert normalise_address("Jane.Doe+x@gmail.com", gmail_dots=False) == "jane.doe@gmail.com"
    assert normalise_address("a.b@corp.example", gmail_domains=("corp.example",)) == "ab@corp.example"


def test_the_will_window():
    settings = WillSettings(conversations=10, days=14)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert window_start(now, settings) == now - timedelta(days=14)
    reset = now - timedelta(days=3)
    assert window_start(now, settings, reset_at=reset) == reset
    assert window_start(now, settings, reset_at=now - timedelta(days=30)) == now - timedelta(days=14)
    warned = now - timedelta(days=1)
    assert window_start(now, settings, reset_at=reset, will_warned_at=warned) == warned + timedelta(microseconds=1)
    assert not is_will_candidate(True, 10, settings)
    assert is_will_candidate(True, 11, settings)
    assert not is_will_candidate(False, 50, settings)  # a reply never makes a candidate
    assert message_refs("<b@x>", ("<a@x>", "<b@x>")) == ("<a@x>", "<b@x>")
    assert message_refs(None, ()) == ()
