"""GET /healthz (process up), /readyz (store, model, mailboxes), /metrics (Prometheus)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api import repository
from service.api.context import ApiContext, WatcherState
from service.api.deps import ContextDep, optional_auth
from service.api.schemas import Check, Health, Readiness
from service.errors import StoreError

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, dependencies=[optional_auth("protect_health")],
            summary="The process is up")
def healthz() -> Health:
    return Health()


def watcher_check(watcher: WatcherState) -> Check:
    """Connected, or reconnecting while its backoff still grows; not once retries have maxed out."""
    name = f"{watcher.settings.name}/{watcher.folder}"
    if watcher.state == "connected":
        return Check(ok=True, detail=f"{name}: connected")
    if watcher.state == "starting":
        return Check(ok=True, detail=f"{name}: connecting")
    if watcher.state == "reconnecting":
        # Backoff keeps the last delay it handed out; reaching the maximum
        # means the server has been failing for the whole escalation.
        delay = watcher.backoff.current
        if delay < watcher.backoff.maximum:
            return Check(ok=True, detail=f"{name}: reconnecting (retry delay {delay:g} s)")
        error = watcher.last_error or "unknown error"
        return Check(ok=False, detail=f"{name}: still failing at the maximum retry delay: {error}")
    return Check(ok=False, detail=f"{name}: {watcher.state}")


def readiness(ctx: ApiContext) -> Readiness:
    checks: dict[str, Check] = {}
    try:
        repository.ping(ctx.store)
        checks["store"] = Check(ok=True, detail="reachable")
    except StoreError as exc:
        checks["store"] = Check(ok=False, detail=f"unreachable ({exc.__class__.__name__})")
    checks["model"] = (
        Check(ok=True, detail="loaded") if ctx.model.loaded
        else Check(ok=False, detail=ctx.model.error or "the model is still loading")
    )
    if ctx.daemon is None:
        checks["mailboxes"] = Check(ok=True, detail="not watched by this process (warningshot api)")
    else:
        states = [watcher_check(w) for w in ctx.daemon.watchers]
        checks["mailboxes"] = Check(ok=all(c.ok for c in states), detail="; ".join(c.detail for c in states) or "none")
    return Readiness(ready=all(c.ok for c in checks.values()), checks=checks)


@router.get("/readyz", response_model=Readiness, dependencies=[optional_auth("protect_health")],
            summary="Store reachable, model loaded, every mailbox connected or retrying",
            responses={503: {"model": Readiness, "description": "Not ready; the checks say why."}})
def readyz(ctx: ContextDep) -> JSONResponse:
    result = readiness(ctx)
    return JSONResponse(result.model_dump(), status_code=200 if result.ready else 503)


@router.get("/metrics", dependencies=[optional_auth("protect_metrics")], summary="Prometheus metrics",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: ContextDep) -> Response:
    _refresh_gauges(ctx)
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _refresh_gauges(ctx: ApiContext) -> None:
    # Counted at scrape time from the store, so the figure is right whichever
    # process (daemon or `warningshot api`) made or approved the drafts.
    try:
        ctx.metrics.drafts_pending.set(repository.pending_drafts(ctx.store))
    except StoreError as exc:
        log.warning("cannot count pending drafts: %s", exc.__class__.__name__)
