"""A sender's escalation state and history; an admin reset back to ``clear``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from service.api import repository
from service.api.deps import PlaybookDep, PrincipalDep, StoreDep, authorize
from service.api.routes.drafts import draft_dict
from service.api.schemas import ResetIn, SenderOut
from service.errors import UnknownSenderError

router = APIRouter(prefix="/v1/senders", tags=["senders"], dependencies=[Depends(authorize)])

Address = Annotated[str, Path(min_length=3, max_length=320, pattern=r"^[^@\s/]+@[^@\s/]+$",
                              description="Any spelling: addresses are normalised (case, +tag, Gmail dots).")]


def _history(playbook: PlaybookDep, address: str) -> dict[str, Any]:
    try:
        history = playbook.sender_history(address)
    except UnknownSenderError as exc:
        raise HTTPException(404, str(exc)) from None
    return {
        **repository.row_dict(history.sender),
        "messages": [repository.row_dict(m) for m in history.messages],
        "events": [repository.row_dict(e) for e in history.events],
        "drafts": [draft_dict(d) for d in history.drafts],
    }


@router.get("/{address}", response_model=SenderOut, summary="Escalation state and history of a sender",
            responses={404: {"description": "Nothing recorded for this sender."}})
def get_sender(address: Address, playbook: PlaybookDep) -> SenderOut:
    return _history(playbook, address)  # type: ignore[return-value]


@router.post("/{address}/reset", response_model=SenderOut, summary="Put a sender back to clear",
             responses={404: {"description": "Nothing recorded for this sender."}})
def reset_sender(
    address: Address, principal: PrincipalDep, playbook: PlaybookDep, store: StoreDep, body: ResetIn | None = None
) -> SenderOut:
    reason = body.reason if body is not None else ""
    try:
        before = playbook.sender_history(address).sender
        sender = playbook.reset_sender(address, actor=principal.actor, reason=reason)
    except UnknownSenderError as exc:
        raise HTTPException(404, str(exc)) from None
    repository.record_audit(
        store, actor=principal.actor, action="senders.reset", target=f"sender:{sender.address}",
        old={"state": before.state, "warned_type": before.warned_type}, new={"state": sender.state, "reason": reason},
    )
    return _history(playbook, address)  # type: ignore[return-value]
