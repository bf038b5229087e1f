"""The review queue: GET /v1/messages and GET /v1/messages/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from service.api import repository
from service.api.deps import StoreDep, authorize
from service.api.schemas import LabelFilter, LanguageCode, MessageDetail, MessagePage, Status, UtcDatetime

router = APIRouter(prefix="/v1/messages", tags=["messages"], dependencies=[Depends(authorize)])

RecordId = Annotated[int, Path(ge=1, le=2**62, description="The message's id in the store.")]


@router.get("", response_model=MessagePage, summary="The review queue, newest first")
def list_messages(
    store: StoreDep,
    label: Annotated[LabelFilter | None, Query(description='A label, or "none" for messages given no label.')] = None,
    lang: Annotated[LanguageCode | None, Query()] = None,
    since: Annotated[UtcDatetime | None,
                     Query(description="Received at or after (ISO 8601; UTC when no offset).")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Received before.")] = None,
    status: Annotated[Status | None, Query(description="Processing state.")] = None,
    flagged: Annotated[bool | None, Query(description="Only messages with (true) or without (false) a label.")] = None,
    sender: Annotated[str | None, Query(min_length=3, max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> MessagePage:
    position = None
    if cursor:
        try:
            position = repository.decode_cursor(cursor)
        except ValueError as exc:
            raise HTTPException(422, [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]) from None
    flt = repository.QueueFilter(label=label, language=lang, since=since, until=until, status=status,
                                 flagged=flagged, sender=sender)
    # One row more than asked tells whether another page exists.
    rows = repository.queue(store, flt, limit=limit + 1, cursor=position)
    page = rows[:limit]
    next_cursor = repository.encode_cursor(page[-1]["received_at"], page[-1]["id"]) if len(rows) > limit else None
    # Plain dicts: FastAPI validates them once against response_model.
    return {"items": page, "next_cursor": next_cursor}  # type: ignore[return-value]


@router.get("/{record_id}", response_model=MessageDetail, summary="One message, with its body when bodies are stored")
def get_message(store: StoreDep, record_id: RecordId) -> MessageDetail:
    return MessageDetail(**repository.message(store, record_id))
