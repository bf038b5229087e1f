"""Label corrections: POST /v1/messages/{id}/feedback, GET /v1/feedback/export (JSON Lines)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from service.api import repository
from service.api.deps import PrincipalDep, StoreDep, authorize
from service.api.routes.messages import RecordId
from service.api.schemas import FeedbackIn, FeedbackOut, UtcDatetime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[Depends(authorize)])


@router.post("/messages/{record_id}/feedback", response_model=FeedbackOut, summary="Correct a message's labels")
def post_feedback(record_id: RecordId, body: FeedbackIn, principal: PrincipalDep, store: StoreDep) -> FeedbackOut:
    """Stored as training data (a later correction replaces an earlier one) and audited."""
    row = repository.save_feedback(store, record_id, body.labels, note=body.note, actor=principal.actor)
    log.info("message %d: labels corrected by %s", record_id, principal.actor)
    return FeedbackOut(**row)


@router.get(
    "/feedback/export",
    summary="Corrected messages as training data (JSON Lines)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object per line."}},
)
def export_feedback(
    store: StoreDep,
    since: Annotated[UtcDatetime | None, Query(description="Only corrections made at or after this time.")] = None,
) -> StreamingResponse:
    """The in-domain format of classifiers/data/WRITING_GUIDE.md: id, lang, variety, scenario,
    product, subject, body (the corrected mail's text when corrections.keep_text or store.store_bodies kept it,
    else empty), labels, hard_negative,
    plus model_labels (what the model said)."""
    rows = repository.feedback_export(store, since)

    def lines() -> Iterator[bytes]:
        for row in rows:
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()

    return StreamingResponse(
        lines(), media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="warningshot-feedback.jsonl"'},
    )
