"""GET/PUT /v1/thresholds and POST /v1/thresholds/preview."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends

from classifiers.interface import LABELS, Classifier, Thresholds
from service.api import repository
from service.api.context import ApiContext
from service.api.deps import ClassifierDep, ContextDep, PrincipalDep, authorize
from service.api.preview import preview
from service.api.schemas import (
    ChangedMessage,
    FlagCounts,
    PreviewIn,
    PreviewOut,
    ThresholdSet,
    ThresholdsOut,
    ThresholdsUpdate,
    ThresholdTable,
)
from service.scoring import effective_thresholds

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/thresholds", tags=["thresholds"], dependencies=[Depends(authorize)])


def _known(thresholds: Thresholds) -> Thresholds:
    # A custom classifier may carry thresholds for labels this product has no use for.
    return Thresholds(
        {k: v for k, v in thresholds.default.items() if k in LABELS},
        {lang: {k: v for k, v in values.items() if k in LABELS} for lang, values in thresholds.per_language.items()},
    )


def _describe(ctx: ApiContext, classifier: Classifier, stored: repository.StoredThresholds) -> ThresholdsOut:
    settings_layer = ctx.settings.thresholds.as_thresholds()
    return ThresholdsOut(
        effective=ThresholdTable.of(effective_thresholds(classifier, ctx.settings).merged(stored.thresholds)),
        stored=ThresholdSet.from_thresholds(_known(stored.thresholds)),
        settings=ThresholdSet.from_thresholds(settings_layer),
        model=ThresholdTable.of(classifier.thresholds),
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


@router.get("", response_model=ThresholdsOut, summary="The thresholds in force, layer by layer")
def get_thresholds(ctx: ContextDep, classifier: ClassifierDep) -> ThresholdsOut:
    return _describe(ctx, classifier, repository.stored_thresholds(ctx.store))


@router.put(
    "", response_model=ThresholdsOut, summary="Replace the stored overrides",
    responses={409: {"description": "expected_version is not the current version"}},
)
def put_thresholds(
    body: ThresholdsUpdate, principal: PrincipalDep, ctx: ContextDep, classifier: ClassifierDep
) -> ThresholdsOut:
    """Takes effect for the next message the daemon handles, without a restart; audited."""
    with ctx.write_lock:
        stored = repository.replace_thresholds(
            ctx.store, body.to_thresholds(), actor=principal.actor, expected_version=body.expected_version
        )
    ctx.thresholds.invalidate()
    log.info("thresholds set by %s (version %d)", principal.actor, stored.version)
    return _describe(ctx, classifier, stored)


@router.post("/preview", response_model=PreviewOut, summary="What proposed thresholds would flag")
def preview_thresholds(body: PreviewIn, ctx: ContextDep, classifier: ClassifierDep) -> PreviewOut:
    """Re-decides the last ``days`` of scored mail with the proposed overrides, from the stored scores."""
    base = effective_thresholds(classifier, ctx.settings)
    current = base.merged(repository.stored_thresholds(ctx.store).thresholds)
    proposed = base.merged(body.thresholds.to_thresholds())
    since = datetime.now(UTC) - timedelta(days=body.days)
    result = preview(ctx.scores.snapshot(since), current, proposed, max_changes=body.max_changes)
    about = repository.summaries(ctx.store, [c.id for c in result.changes])
    changes = [
        ChangedMessage(
            id=c.id, language=c.language, scores=c.scores, before=c.before, after=c.after,
            received_at=about.get(c.id, {}).get("received_at"),
            sender=about.get(c.id, {}).get("sender"),
            subject=about.get(c.id, {}).get("subject"),
        )
        for c in result.changes
    ]
    return PreviewOut(
        since=since,
        days=body.days,
        messages=result.messages,
        current=FlagCounts(**result.current.as_dict()),
        proposed=FlagCounts(**result.proposed.as_dict()),
        changed=result.changed,
        changes=changes,
        changes_truncated=result.changed > len(changes),
    )
