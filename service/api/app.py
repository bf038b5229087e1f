"""``create_app``: the FastAPI application of the admin API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from classifiers.interface import Classifier, Thresholds
from service.api.context import ApiContext, DaemonState, ModelHandle, ModelNotReady
from service.api.deps import TokenBook
from service.api.limits import BodySizeLimit
from service.api.live_thresholds import LiveThresholds
from service.api.repository import NotFound, VersionConflict
from service.api.routes import audit, classify, drafts, feedback, health, messages, senders, stats
from service.api.routes import model as model_routes
from service.api.routes import thresholds as threshold_routes
from service.api.score_index import ScoreIndex
from service.errors import StoreError
from service.metrics import Metrics
from service.playbook.engine import Playbook
from service.scoring import effective_thresholds
from service.settings import Settings
from service.store import Store

log = logging.getLogger(__name__)

DESCRIPTION = """\
Tune and supervise WarningShot: thresholds (audited, effective for the next
message), the review queue, label feedback, reply drafts, sender escalation,
on-demand classification, statistics, health and metrics.

Authenticate with `Authorization: Bearer <token>`: a viewer token may GET,
an admin token may do everything.
"""


def create_app(
    settings: Settings,
    store: Store,
    classifier: Classifier | ModelHandle,
    daemon_state: DaemonState | None = None,
    *,
    metrics: Metrics | None = None,
    thresholds: LiveThresholds | None = None,
    playbook: Playbook | None = None,
) -> FastAPI:
    """Build the API over ``store`` (migrated by the caller).

    ``classifier`` may be a :class:`ModelHandle` still loading (model routes
    answer 503 until it is ready). Inside the daemon, pass the daemon's
    ``metrics`` and the pipeline's ``thresholds`` so that /metrics shows its
    counters and a threshold change reaches the very next message, and its
    ``playbook`` so that approvals send with the daemon's SMTP and IMAP set-up.
    """
    model = classifier if isinstance(classifier, ModelHandle) else ModelHandle(classifier)
    base: Callable[[], Thresholds] = lambda: effective_thresholds(model.require(), settings)  # noqa: E731
    live = thresholds or LiveThresholds(store, base)

    def score(texts: Sequence[str]) -> list[dict[str, float]]:
        # The litmus test of an edited draft calls the model too.
        with model.lock:
            return model.require().predict(texts)
    ctx = ApiContext(
        settings=settings,
        store=store,
        model=model,
        thresholds=live,
        metrics=metrics or Metrics(),
        tokens=TokenBook(settings.api),
        scores=ScoreIndex(store),
        playbook=playbook or Playbook(settings, store, score=score, thresholds=live),
        daemon=daemon_state,
    )
    app = FastAPI(
        title="WarningShot admin API",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )
    _add_error_handlers(app)
    for module in (threshold_routes, audit, messages, feedback, drafts, senders, classify, model_routes, stats, health):
        app.include_router(module.router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The offending input is left out: it may be a mail text or a token.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(VersionConflict)
    async def conflict(_request: Request, exc: VersionConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ModelNotReady)
    async def model_not_ready(_request: Request, exc: ModelNotReady) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        # SQLAlchemy's message goes on with the statement; its first line names the problem.
        log.warning("%s %s: store error: %s", request.method, request.url.path, str(exc).splitlines()[0])
        return JSONResponse({"detail": "the store is unavailable; try again"}, status_code=503,
                            headers={"Retry-After": "1"})
