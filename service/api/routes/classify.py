"""POST /v1/classify: score a text on demand, as the daemon would score a mail."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException

from service.api.deps import ClassifierDep, ContextDep, authorize
from service.api.schemas import ClassifyIn, ClassifyOut
from service.decision import decide
from service.mail.language import detect_language
from service.mail.parse import model_text

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/classify", tags=["classify"], dependencies=[Depends(authorize)])


@router.post("", response_model=ClassifyOut, summary="Score a text with the model and the thresholds in force",
             responses={422: {"description": "Invalid body, or the model could not score this text."}})
def classify(body: ClassifyIn, ctx: ContextDep, classifier: ClassifierDep) -> ClassifyOut:
    max_chars = ctx.settings.model.max_chars
    # The same text and language the pipeline would derive from a mail with this subject and body.
    text = model_text(body.subject, body.text, max_chars)
    language = body.language or detect_language(model_text("", body.text, max_chars) or body.subject)
    thresholds = ctx.thresholds()
    try:
        with ctx.model.lock:
            scores = classifier.predict([text])[0]
            decision = decide(scores, language, thresholds, ctx.settings.tagging)
            evidence = classifier.evidence(text, decision.labels) if decision.labels else {}
    except Exception as exc:  # noqa: BLE001 - the model's failure on one text is the caller's answer
        log.warning("on-demand classification failed: %s", exc.__class__.__name__)
        raise HTTPException(422, f"the model could not score this text ({exc.__class__.__name__})") from None
    return ClassifyOut(
        language=language,
        scores=scores,
        labels=list(decision.labels),
        thresholds=dict(decision.thresholds),
        evidence=evidence,
        action=decision.as_record(),
    )
