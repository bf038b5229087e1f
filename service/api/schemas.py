"""Pydantic models at the API boundary: what requests may carry and what responses hold.

Request models forbid unknown fields, so a typo ("abusiv") is a 422 naming the
field rather than a silently ignored value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from classifiers.interface import LABELS, Thresholds

Label = Literal["abusive", "extortion", "legal_threat"]
LabelFilter = Literal["abusive", "extortion", "legal_threat", "none"]
Status = Literal["processing", "decided", "done", "quarantined", "skipped", "vanished"]
LanguageCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}$"),
    Field(description='ISO 639-1 code as the language detector writes it ("en", "he"), or "und".'),
]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- thresholds ------------------------------------------------------------------


class LabelThresholds(RequestModel):
    """A threshold per label; a missing or null label keeps the value underneath."""

    abusive: Probability | None = None
    extortion: Probability | None = None
    legal_threat: Probability | None = None

    def values(self) -> dict[str, float]:
        return {label: v for label in LABELS if (v := getattr(self, label)) is not None}


class ThresholdSet(RequestModel):
    """Overrides: defaults per label, and per-language values that beat them."""

    default: LabelThresholds = Field(default_factory=LabelThresholds)
    per_language: dict[LanguageCode, LabelThresholds] = Field(default_factory=dict, max_length=300)

    def to_thresholds(self) -> Thresholds:
        per_language = {lang: v.values() for lang, v in self.per_language.items() if v.values()}
        return Thresholds(self.default.values(), per_language)

    @classmethod
    def from_thresholds(cls, thresholds: Thresholds) -> ThresholdSet:
        return cls(
            default=LabelThresholds(**thresholds.default),
            per_language={lang: LabelThresholds(**v) for lang, v in sorted(thresholds.per_language.items())},
        )


class ThresholdsUpdate(ThresholdSet):
    """The new stored overrides, replacing the previous ones entirely."""

    expected_version: int | None = Field(
        default=None, ge=0, le=2**62,
        description="The version last read; if someone changed the thresholds since, 409 instead of overwriting.",
    )


class ThresholdTable(BaseModel):
    default: dict[str, float]
    per_language: dict[str, dict[str, float]]

    @classmethod
    def of(cls, thresholds: Thresholds) -> ThresholdTable:
        return cls(
            default=dict(thresholds.default),
            per_language={lang: dict(v) for lang, v in sorted(thresholds.per_language.items())},
        )


class ThresholdsOut(BaseModel):
    effective: ThresholdTable = Field(description="What the next message is judged with.")
    stored: ThresholdSet = Field(description="Overrides set through this API (top layer).")
    settings: ThresholdSet = Field(description="Overrides from the settings file (middle layer).")
    model: ThresholdTable = Field(description="The thresholds shipped with the model (bottom layer).")
    version: int
    updated_at: datetime | None
    updated_by: str | None


class PreviewIn(RequestModel):
    thresholds: ThresholdSet = Field(
        description="Proposed stored overrides, exactly as PUT /v1/thresholds would take them.")
    days: int = Field(default=30, ge=1, le=365)
    max_changes: int = Field(default=100, ge=0, le=1000, description="How many changed messages to list.")


class LanguageCounts(BaseModel):
    messages: int
    flagged: int
    by_label: dict[str, int]


class FlagCounts(BaseModel):
    flagged: int
    by_label: dict[str, int]
    by_language: dict[str, LanguageCounts]


class ChangedMessage(BaseModel):
    id: int
    received_at: datetime | None
    sender: str | None
    subject: str | None
    language: str
    scores: dict[str, float]
    before: list[str]
    after: list[str]


class PreviewOut(BaseModel):
    since: datetime
    days: int
    messages: int = Field(description="Scored messages received in the window.")
    current: FlagCounts
    proposed: FlagCounts
    changed: int
    changes: list[ChangedMessage] = Field(description="Newest first, at most max_changes.")
    changes_truncated: bool


# -- messages and feedback -----------------------------------------------------------


class MessageOut(BaseModel):
    id: int
    mailbox: str
    folder: str
    uid: int
    message_id: str | None
    sender: str | None
    subject: str | None
    language: str | None
    scores: dict[str, float] | None
    labels: list[str] | None
    evidence: dict[str, str] | None
    action: dict[str, Any] | None
    status: str
    attempts: int
    error: str | None
    received_at: datetime
    updated_at: datetime
    feedback_labels: list[str] | None = Field(description="Labels as corrected by an admin or an agent, if any.")


class MessageDetail(MessageOut):
    body: str | None = Field(description="Only kept when store.store_bodies is on.")


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class FeedbackIn(RequestModel):
    labels: list[Label] = Field(max_length=10, description="The correct labels; [] for none.")
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class FeedbackOut(BaseModel):
    message_id: int
    labels: list[str]
    model_labels: list[str] | None
    note: str | None
    actor: str
    source: str = Field(description='"api" (an admin) or "imap" (an agent changed a keyword or folder).')
    created_at: datetime
    updated_at: datetime


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    old: Any
    new: Any


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: int | None


# -- classify ----------------------------------------------------------------------


class ClassifyIn(RequestModel):
    text: str = Field(min_length=1, max_length=200_000,
                      description="The mail body; quotes and signatures are removed as for real mail.")
    subject: str = Field(default="", max_length=2000)
    language: LanguageCode | None = Field(default=None, description="Detected from the text when absent.")


class ClassifyOut(BaseModel):
    language: str
    scores: dict[str, float]
    labels: list[str]
    thresholds: dict[str, float] = Field(description="The threshold each label was compared with.")
    evidence: dict[str, str]
    action: dict[str, Any] = Field(description="What the daemon would do with such a message.")


# -- stats and health ----------------------------------------------------------------


class DayCounts(BaseModel):
    day: str
    messages: int
    flagged: int
    by_label: dict[str, int]


class LagOut(BaseModel):
    pending: int = Field(description="Messages started but not finished.")
    oldest_pending_seconds: float | None
    last_handled_at: datetime | None
    seconds_since_last_handled: float | None


class MailboxState(BaseModel):
    mailbox: str
    folder: str
    state: str = Field(description='connected, starting, reconnecting, stopped, or "unknown" outside the daemon.')
    reconnects: int | None
    last_error: str | None
    checkpoint_at: datetime | None


class StatsOut(BaseModel):
    since: datetime
    days: int
    messages: int
    flagged: int
    by_label: dict[str, int]
    by_state: dict[str, int]
    by_language: dict[str, LanguageCounts]
    by_day: list[DayCounts]
    lag: LagOut
    mailboxes: list[MailboxState]


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


# -- drafts and senders (the playbook) -------------------------------------------------

DraftState = Literal["error", "blocked", "ready", "appended", "sending", "sent", "send_failed", "rejected", "dry_run"]


class DraftSummary(BaseModel):
    id: int
    state: str
    template: str
    language: str
    direction: str
    mailbox: str
    to_address: str
    to_name: str | None
    subject: str | None
    record_id: int | None = Field(description="The message it answers (GET /v1/messages/{id}).")
    source_message_id: str | None
    message_id: str | None = Field(description="The draft's own Message-ID (in Drafts, later in Sent).")
    edited: bool
    error: str | None
    approved_by: str | None
    approved_at: datetime | None
    rejected_by: str | None
    rejected_at: datetime | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DraftOut(DraftSummary):
    sender_id: int
    from_address: str | None
    from_name: str | None
    in_reply_to: str | None
    references: list[str]
    text: str | None = Field(description="The reply as it will be sent (unless edited on approval).")
    note: dict[str, Any] | None = Field(description="Internal note: labels, evidence, history; never sent.")
    litmus: dict[str, float] | None = Field(description="The classifier's scores of the draft itself.")
    reject_reason: str | None
    send_attempts: int


class DraftPage(BaseModel):
    items: list[DraftSummary]
    next_offset: int | None


class ApproveIn(RequestModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000, pattern=r"\S")] | None = Field(
        default=None, description="An edited reply text; omitted or null sends the draft as it is.")


class RejectIn(RequestModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")]


class ResetIn(RequestModel):
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""


class SenderMessageOut(BaseModel):
    id: int
    mailbox: str
    message_key: str
    message_id: str | None
    record_id: int | None
    labels: list[str]
    scores: dict[str, float] | None
    evidence: dict[str, str] | None
    plan: dict[str, Any]
    received_at: datetime


class SenderEventOut(BaseModel):
    id: int
    kind: str
    actor: str | None
    draft_id: int | None
    message_key: str | None
    detail: dict[str, Any] | None
    created_at: datetime


class SenderOut(BaseModel):
    address: str
    display_name: str | None
    state: str = Field(description="clear, warned, terminated or legal.")
    warned_type: str | None
    will_candidate: bool
    state_changed_at: datetime
    reset_at: datetime | None
    created_at: datetime
    messages: list[SenderMessageOut]
    events: list[SenderEventOut]
    drafts: list[DraftSummary]


# -- the model -----------------------------------------------------------------------


class ModelOut(BaseModel):
    loaded: bool = Field(description="False while `warningshot api` is still loading the model.")
    version: str | None = Field(description="The registry version (or 'shipped'), else the classifier's name.")
    labels: list[str]
    error: str | None = Field(default=None, description="Why the model is not loaded, if it is not.")
