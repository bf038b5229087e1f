"""GET /v1/stats: counts per label, language and day; processing lag; mailbox connections."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from classifiers.interface import LABELS
from service.api import repository
from service.api.context import ApiContext
from service.api.deps import ContextDep, authorize
from service.api.schemas import DayCounts, LagOut, LanguageCounts, MailboxState, StatsOut

router = APIRouter(prefix="/v1/stats", tags=["stats"], dependencies=[Depends(authorize)])


def _labels(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [label for label in value if label in LABELS] if isinstance(value, list) else []


def mailbox_states(ctx: ApiContext) -> list[MailboxState]:
    checkpoints = repository.checkpoints(ctx.store)
    if ctx.daemon is not None:
        return [
            MailboxState(mailbox=w.settings.name, folder=w.folder, state=w.state, reconnects=w.reconnects,
                         last_error=w.last_error, checkpoint_at=checkpoints.get((w.settings.name, w.folder)))
            for w in ctx.daemon.watchers
        ]
    # `warningshot api` alone: the watchers live in the daemon's process; the
    # checkpoint time still shows when each folder last made progress.
    return [
        MailboxState(mailbox=m.name, folder=f, state="unknown", reconnects=None, last_error=None,
                     checkpoint_at=checkpoints.get((m.name, f)))
        for m in ctx.settings.mailboxes
        for f in m.folders
    ]


@router.get("", response_model=StatsOut, summary="Counts, lag and mailbox states")
def stats(
    ctx: ContextDep,
    days: Annotated[int, Query(ge=1, le=366, description="Calendar days (UTC), today included.")] = 30,
) -> StatsOut:
    now = datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=days - 1), time(), UTC)
    by_state: dict[str, int] = {}
    by_label = dict.fromkeys(LABELS, 0)
    by_language: dict[str, LanguageCounts] = {}
    by_day: dict[str, DayCounts] = {}
    messages = flagged = 0
    for day, language, state, labels_text, n in repository.day_counts(ctx.store, since):
        labels = _labels(labels_text)
        lang = by_language.setdefault(
            language or "und", LanguageCounts(messages=0, flagged=0, by_label=dict.fromkeys(LABELS, 0)))
        daily = by_day.setdefault(day, DayCounts(day=day, messages=0, flagged=0, by_label=dict.fromkeys(LABELS, 0)))
        by_state[state] = by_state.get(state, 0) + n
        messages += n
        lang.messages += n
        daily.messages += n
        if labels:
            flagged += n
            lang.flagged += n
            daily.flagged += n
        for label in labels:
            by_label[label] += n
            lang.by_label[label] += n
            daily.by_label[label] += n
    lag = repository.lag(ctx.store)
    return StatsOut(
        since=since,
        days=days,
        messages=messages,
        flagged=flagged,
        by_label=by_label,
        by_state=by_state,
        by_language=dict(sorted(by_language.items())),
        by_day=[by_day[d] for d in sorted(by_day)],
        lag=LagOut(
            pending=lag.pending,
            oldest_pending_seconds=(now - lag.oldest_pending_at).total_seconds() if lag.oldest_pending_at else None,
            last_handled_at=lag.last_handled_at,
            seconds_since_last_handled=(now - lag.last_handled_at).total_seconds() if lag.last_handled_at else None,
        ),
        mailboxes=mailbox_states(ctx),
    )
