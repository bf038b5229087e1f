"""GET /v1/audit: every change made through the API, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.api import repository
from service.api.deps import StoreDep, authorize
from service.api.schemas import AuditOut, AuditPage, UtcDatetime

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(authorize)])


@router.get("", response_model=AuditPage, summary="The audit log: who changed what, when, from what to what")
def list_audit(
    store: StoreDep,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$",
                                        description="e.g. thresholds.update, feedback.labels, drafts.approve")] = None,
    since: Annotated[UtcDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=2**62, description="next_cursor of the previous page.")] = None,
) -> AuditPage:
    rows = repository.audit_entries(store, action=action, since=since, limit=limit + 1, before_id=cursor)
    page = rows[:limit]
    return AuditPage(items=[AuditOut(**r) for r in page], next_cursor=page[-1]["id"] if len(rows) > limit else None)
