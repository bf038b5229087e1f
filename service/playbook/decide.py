"""The playbook's one decision: what a message means for its sender, and which reply to draft.

The ladder, per sender:

* a legal threat skips the warning shot: termination that sends further
  correspondence through counsel, the message routed to counsel, state ``legal``;
* mail from a sender in ``legal`` is routed to counsel, with no new draft;
* a first offence (extortion, abusive, or the Will pattern when Will drafts
  are enabled) gets the warning shot of that type, state ``warned``;
* an offence after any warning gets the termination notice with the
  explanation for that offence, state ``terminated``;
* after termination nothing more is drafted (walk away); the offence is recorded.

Several labels take the strongest path: legal > extortion > abusive > Will.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from service.playbook.senders import SenderState

LEGAL = "legal_threat"
# Strongest first; "will" is the sender pattern, not a label.
OFFENCE_ORDER: tuple[str, ...] = ("extortion", "abusive", "will")

# The shipped template names (config/templates/<lang>/<name>.txt).
TEMPLATES: tuple[str, ...] = (
    "warning_abusive",
    "warning_extortion",
    "warning_will",
    "termination_abusive",
    "termination_extortion",
    "termination_will",
    "termination_legal",
)


@dataclass(frozen=True, slots=True)
class PlaybookDecision:
    """What the playbook does for one message; stored with the message and replayed as is."""

    path: str
    """Which rule applied: legal_threat, legal_sender, first_offence, offence_after_warning,
    after_termination, will_candidate (recorded only), or none."""
    before: SenderState
    after: SenderState
    offence: str | None = None
    template: str | None = None
    route_to_counsel: bool = False
    will_candidate: bool = False

    def as_record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "state_before": self.before.state,
            "warned_type_before": self.before.warned_type,
            "state_after": self.after.state,
            "warned_type_after": self.after.warned_type,
            "offence": self.offence,
            "template": self.template,
            "route_to_counsel": self.route_to_counsel,
            "will_candidate": self.will_candidate,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> PlaybookDecision:
        return cls(
            path=data["path"],
            before=SenderState(data["state_before"], data.get("warned_type_before")),
            after=SenderState(data["state_after"], data.get("warned_type_after")),
            offence=data.get("offence"),
            template=data.get("template"),
            route_to_counsel=bool(data.get("route_to_counsel")),
            will_candidate=bool(data.get("will_candidate")),
        )


def decide_playbook(
    labels: Collection[str],
    sender: SenderState,
    *,
    will_candidate: bool = False,
    will_drafts: bool = False,
) -> PlaybookDecision:
    """The ladder in one place; pure, so every path has a test (tests/test_playbook_decide.py)."""
    if sender.state == "legal":
        return PlaybookDecision("legal_sender", sender, sender, route_to_counsel=True, will_candidate=will_candidate)
    if LEGAL in labels:
        return PlaybookDecision(
            "legal_threat", sender, SenderState("legal"), offence=LEGAL, template="termination_legal",
            route_to_counsel=True, will_candidate=will_candidate,
        )
    present = set(labels)
    if will_candidate and will_drafts:
        present.add("will")
    offence = next((o for o in OFFENCE_ORDER if o in present), None)
    if offence is None:
        path = "will_candidate" if will_candidate else "none"
        return PlaybookDecision(path, sender, sender, will_candidate=will_candidate)
    if sender.state == "terminated":
        return PlaybookDecision("after_termination", sender, sender, offence=offence, will_candidate=will_candidate)
    if sender.state == "warned":
        return PlaybookDecision(
            "offence_after_warning", sender, SenderState("terminated"), offence=offence,
            template=f"termination_{offence}", will_candidate=will_candidate,
        )
    return PlaybookDecision(
        "first_offence", sender, SenderState("warned", offence), offence=offence,
        template=f"warning_{offence}", will_candidate=will_candidate,
    )


__all__ = ["LEGAL", "OFFENCE_ORDER", "TEMPLATES", "PlaybookDecision", "decide_playbook"]
