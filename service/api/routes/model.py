"""The model in use: GET /v1/model, POST /v1/model/reload (after `warningshot model use`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, status

from classifiers.interface import model_version
from service.api import repository
from service.api.context import ApiContext
from service.api.deps import ContextDep, PrincipalDep, authorize
from service.api.schemas import ModelOut
from service.scoring import load_classifier

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(authorize)])


def _describe(ctx: ApiContext) -> ModelOut:
    if not ctx.model.loaded:
        return ModelOut(loaded=False, version=None, labels=[], error=ctx.model.error)
    classifier = ctx.model.require()
    return ModelOut(loaded=True, version=model_version(classifier), labels=list(classifier.labels))


@router.get("/model", response_model=ModelOut, summary="The model in use")
def get_model(ctx: ContextDep) -> ModelOut:
    return _describe(ctx)


@router.post("/model/reload", response_model=ModelOut, summary="Load the active model version and swap it in")
def reload_model(ctx: ContextDep, principal: PrincipalDep) -> ModelOut:
    """Loads the version `warningshot model use` made active (the same as SIGHUP to the daemon).

    Messages in flight finish with the model they started with; none is
    dropped or handled twice. If the new model fails to load, the current one
    stays and the answer is 500 with the reason.
    """
    before = _describe(ctx).version
    try:
        if ctx.daemon is not None:
            ctx.daemon.reload_model()
        else:
            classifier = load_classifier(ctx.settings.model)
            with ctx.model.lock:
                ctx.model.replace(classifier)
            ctx.thresholds.invalidate()
    except Exception as exc:  # noqa: BLE001 - any loading failure keeps the current model
        log.error("model reload requested by %s failed: %s", principal.actor, exc)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            f"reload failed, the current model stays: {exc.__class__.__name__}: {exc}") from exc
    after = _describe(ctx)
    with ctx.store.session() as s:
        repository.audit(s, actor=principal.actor, action="model.reload", target="model",
                         old={"version": before}, new={"version": after.version})
    return after
