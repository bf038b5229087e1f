"""Reply drafts: list, read, approve (optionally edited) and reject; the playbook does the work.

Approval is the only way a reply leaves WarningShot: the playbook sends it over
SMTP, files it in Sent and removes it from Drafts (service/playbook/sending.py).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from service.api import repository
from service.api.deps import PlaybookDep, PrincipalDep, StoreDep, authorize
from service.api.schemas import ApproveIn, DraftOut, DraftPage, DraftState, RejectIn
from service.errors import DraftBlockedError, DraftStateError, SendError, UnknownDraftError
from service.store.playbook_tables import Draft

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/drafts", tags=["drafts"], dependencies=[Depends(authorize)])

DraftId = Annotated[int, Path(ge=1, le=2**62)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No draft has this id."},
    409: {"description": "The draft's state does not allow it (already sent, rejected, being sent)."},
}


def draft_dict(draft: Draft) -> dict[str, Any]:
    return repository.row_dict(draft, exclude=("raw", "source_key"))


def _get(playbook: PlaybookDep, draft_id: int) -> Draft:
    try:
        return playbook.get_draft(draft_id)
    except UnknownDraftError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("", response_model=DraftPage, summary="Drafts, newest first")
def list_drafts(
    playbook: PlaybookDep,
    state: Annotated[DraftState | None, Query(description="e.g. appended: in Drafts, waiting for a person.")] = None,
    mailbox: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DraftPage:
    rows = playbook.drafts(state=state, mailbox=mailbox, limit=limit + 1, offset=offset)
    page = [draft_dict(d) for d in rows[:limit]]
    return {"items": page, "next_offset": offset + limit if len(rows) > limit else None}  # type: ignore[return-value]


@router.get("/{draft_id}", response_model=DraftOut, summary="One draft: text, internal note, litmus scores",
            responses={404: ERRORS[404]})
def get_draft(draft_id: DraftId, playbook: PlaybookDep) -> DraftOut:
    return draft_dict(_get(playbook, draft_id))  # type: ignore[return-value]


@router.post(
    "/{draft_id}/approve", response_model=DraftOut, summary="Approve and send, optionally with an edited text",
    responses={**ERRORS, 422: {"description": "Invalid body, or the edited text fails the litmus test."},
               502: {"description": "SMTP failed; the draft is kept as send_failed and can be approved again."}},
)
def approve(
    draft_id: DraftId, principal: PrincipalDep, playbook: PlaybookDep, store: StoreDep, body: ApproveIn | None = None
) -> DraftOut:
    before = _get(playbook, draft_id)
    edited = body.text if body is not None else None
    try:
        draft = playbook.approve_draft(draft_id, actor=principal.actor, edited_text=edited)
    except UnknownDraftError as exc:
        raise HTTPException(404, str(exc)) from None
    except DraftBlockedError as exc:
        raise HTTPException(422, str(exc)) from None
    except DraftStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except SendError as exc:
        repository.record_audit(store, actor=principal.actor, action="drafts.approve", target=f"draft:{draft_id}",
                                old={"state": before.state}, new={"state": "send_failed"})
        raise HTTPException(502, f"sending failed ({exc}); the draft is kept and can be approved again") from None
    except KeyError as exc:
        # The draft's mailbox is no longer in the settings this process runs with.
        raise HTTPException(409, f"cannot send: {exc.args[0] if exc.args else exc}") from None
    repository.record_audit(store, actor=principal.actor, action="drafts.approve", target=f"draft:{draft_id}",
                            old={"state": before.state}, new={"state": draft.state, "edited": draft.edited})
    return draft_dict(draft)  # type: ignore[return-value]


@router.post("/{draft_id}/reject", response_model=DraftOut, summary="Discard a draft, saying why",
             responses=ERRORS)
def reject(
    draft_id: DraftId, body: RejectIn, principal: PrincipalDep, playbook: PlaybookDep, store: StoreDep
) -> DraftOut:
    before = _get(playbook, draft_id)
    try:
        draft = playbook.reject_draft(draft_id, actor=principal.actor, reason=body.reason)
    except UnknownDraftError as exc:
        raise HTTPException(404, str(exc)) from None
    except DraftStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except KeyError as exc:
        raise HTTPException(409, f"cannot reach the draft's mailbox: {exc.args[0] if exc.args else exc}") from None
    repository.record_audit(store, actor=principal.actor, action="drafts.reject", target=f"draft:{draft_id}",
                            old={"state": before.state}, new={"state": draft.state, "reason": body.reason})
    return draft_dict(draft)  # type: ignore[return-value]
