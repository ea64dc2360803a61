"""The v1 event contracts. Each model names its CloudEvents type; the data of an event is the model.

Events carry no direct personal data (names, phone and ID numbers stay in intake's store); a
department that must call the citizen asks intake's authorised API for the contact details.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


# GB/T 2260 county code (6 digits), extended by town (3) and village/community (3).
DivisionCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$", description="administrative division code")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=5000)]


class UnitKind(StrEnum):
    """The kinds of unit a case is dispatched to; each has its own dispatch and feedback topic."""

    POLICE = "police"
    COURT = "court"
    PETITION = "petition"
    MEDIATION = "mediation"
    GRID = "grid"  # a grid (网格) handles the minor matters its access list admits (小事不出格)


class Channel(StrEnum):
    """The window a request came in through."""

    WINDOW = "window"  # 窗口受理
    HOTLINE = "hotline"  # 12345
    GRID = "grid"  # 网格员上报
    CITIZEN_APP = "citizen_app"
    ONLINE_PETITION = "online_petition"  # 网上信访
    POLICE_REFERRAL = "police_referral"  # 110 非警务警情
    COURT_REFERRAL = "court_referral"  # 诉前调解


class Level(StrEnum):
    """Administrative levels a unit can sit at, lowest first."""

    GRID = "grid"
    VILLAGE = "village"
    TOWN = "town"
    COUNTY = "county"
    CITY = "city"


class Contract(BaseModel):
    """Base of every event's data. Consumers ignore unknown fields (tolerant reader)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    EVENT_TYPE: ClassVar[str]

    def subject(self) -> str:
        """What the event is about: its CloudEvents subject and Kafka key."""
        raise NotImplementedError


class Event(Contract):
    """An event about a case: subject and key are the case id."""

    case_id: UUID

    def subject(self) -> str:
        return str(self.case_id)


class Location(BaseModel):
    """Where the matter is: division code, optional grid and address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    division_code: DivisionCode
    grid_id: Annotated[str, Field(max_length=40)] | None = None
    address: Annotated[str, Field(max_length=200)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None


class AttachmentRef(BaseModel):
    """Metadata of an attachment kept outside Kafka."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    media_type: str
    size: int
    sha256: str


class CaseReceived(Event):
    """Intake accepted a request and gave it a case number (受理)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.received.v1"

    case_number: str
    channel: Channel
    title: ShortText
    description: LongText
    category: str | None = None
    location: Location
    received_at: datetime
    has_reporter_contact: bool = False
    risk_flags: list[str] = []
    occurred_at: datetime | None = None
    people_involved: int | None = None
    parties_count: int = 0
    attachments: list[AttachmentRef] = []
    submission_ref: str | None = None  # the submitter's own reference (Kafka submissions: their event id)
    disposition: "WindowDisposition | None" = None  # finished or refused at the window: the router only records it


class CaseDuplicateReported(Event):
    """The same matter was reported again (重复件): linked to the case, not dispatched twice."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.duplicate_reported.v1"

    case_number: str
    submission_id: UUID
    channel: Channel
    similarity: float
    received_at: datetime


class SubmissionRejected(Contract):
    """A submission on Kafka that intake could not accept, addressed to its submitter."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.submission.rejected.v1"

    submission_id: str  # the submitter's CloudEvent id
    submitter: str  # the submitter's CloudEvent source
    errors: list[dict[str, str]]

    def subject(self) -> str:
        return self.submission_id


class RiskColour(StrEnum):
    """Risk grade (三色预警): raises priority, shortens deadlines, lifts the level, adds police."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class RoutingReason(StrEnum):
    """Why a routing decision was made."""

    INITIAL = "initial"
    RETURN = "return"  # 退单: the unit sent it back
    TRANSFER = "transfer"  # 转办: the unit passed it on
    MANUAL = "manual"  # an operator dispatched it from the queue, or reassigned it
    REWORK = "rework"  # 重办: the citizen was not satisfied
    ESCALATION = "escalation"


class Assignment(BaseModel):
    """A unit a case is dispatched to, as lead (主办) or assisting (协办)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dispatch_id: UUID
    unit_id: str
    unit_kind: UnitKind
    unit_name: str
    level: Level
    role: str  # "lead" | "assist"


class TriageCandidate(BaseModel):
    """A category the triage model considered, with its calibrated probability."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    category: str
    unit_kind: UnitKind
    probability: float


class TriageExplanation(BaseModel):
    """Why the model chose a category: its version, probabilities and the strongest features."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_version: str
    probability: float  # of the category
    kind_probability: float  # of its unit kind (what the manual-queue threshold applies to)
    threshold: float
    features: list[str] = []  # character n-grams and words that pushed the category most
    candidates: list[TriageCandidate] = []


class CaseRouted(Event):
    """The router decided who handles a case, and why (rule ids, catalogue version, inputs)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.routed.v1"

    case_number: str
    category: str
    unit_kind: UnitKind  # the lead unit's
    unit_id: str
    unit_name: str
    level: Level
    rule_ids: list[str]
    catalogue_version: str
    confidence: float
    reason: RoutingReason = RoutingReason.INITIAL
    risk_colour: RiskColour = RiskColour.GREEN
    risk_reasons: list[str] = []
    assignments: list[Assignment] = []
    triage: TriageExplanation | None = None  # when the model, not a given category, chose it


class ManualTriageRequired(Event):
    """No rule placed the case confidently: it waits in the command centre's manual queue."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.manual_triage_required.v1"

    case_number: str
    reason: str
    catalogue_version: str
    model_version: str | None = None
    candidates: list[TriageCandidate] = []  # the model's top categories, for the operator


class TriageCorrected(Event):
    """A person corrected the router's triage: a labelled example for the next model.

    Manual dispatch from the queue and reassignment name the right category; a transfer (转办)
    names the right unit kind; a return (退单) says only that the category was wrong, and why.
    The report's text is not repeated here: training joins it from the case's `case.received`.
    """

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.triage_corrected.v1"

    case_number: str
    correction: Literal["manual_dispatch", "reassignment", "transfer", "return"]
    predicted_category: str | None = None  # what the router had chosen or proposed first
    predicted_kind: UnitKind | None = None
    predicted_by: Literal["model", "channel", "operator", "department", "safety"] | None = None
    model_reading: str | None = None  # the model's own most probable item, when the model read the case
    corrected_category: str | None = None
    corrected_kind: UnitKind | None = None
    reason: str | None = None
    by: str  # the operator's subject or the unit's id
    model_version: str | None = None
    catalogue_version: str


class CaseDispatched(Event):
    """A dispatch (派单) to one unit, on that unit kind's dispatch topic."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.dispatched.v1"

    case_number: str
    dispatch_id: UUID
    unit_kind: UnitKind
    unit_id: str
    unit_name: str
    level: Level
    category: str
    title: str
    description: str
    location: Location
    acknowledge_by: datetime
    resolve_by: datetime
    role: str = "lead"  # "lead" (主办) or "assist" (协办)
    risk_colour: RiskColour = RiskColour.GREEN
    reason: RoutingReason = RoutingReason.INITIAL


class DispatchAccepted(Event):
    """The unit signed for the dispatch (签收)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.accepted.v1"

    dispatch_id: UUID
    unit_id: str
    note: Annotated[str, Field(max_length=2000)] | None = None


class DispatchResolved(Event):
    """The unit finished handling the case (办结)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.resolved.v1"

    dispatch_id: UUID
    unit_id: str
    summary: Annotated[str, Field(min_length=1, max_length=5000)]


class DispatchReturned(Event):
    """The unit sent the dispatch back (退单): not theirs, with a reason."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.returned.v1"

    dispatch_id: UUID
    unit_id: str
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class DispatchTransferred(Event):
    """The unit passed the case on (转办) to a named unit or a unit kind."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.transferred.v1"

    dispatch_id: UUID
    unit_id: str
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    target_unit_id: str | None = None
    target_kind: UnitKind | None = None


class DispatchProgress(Event):
    """The unit reports progress (进展)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.progress.v1"

    dispatch_id: UUID
    unit_id: str
    note: Annotated[str, Field(min_length=1, max_length=5000)]


class SupervisionNotice(Event):
    """督办: a deadline clock turned yellow (near) or red (overdue), or an operator issued a
    督办单 by hand (`issued_by_hand`, colour white, yellow or red, with a note)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.supervision.notice.v1"

    dispatch_id: UUID
    unit_id: str  # the unit whose clock it is
    clock: str  # "acknowledge" | "resolve"
    colour: str  # "white" | "yellow" | "red"
    due_at: datetime
    issued_by_hand: bool = False
    note: str | None = None


class CaseEscalated(Event):
    """A red clock (or a second rework) escalates the case to the level above."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.escalated.v1"

    dispatch_id: UUID
    from_unit_id: str
    to_unit_id: str
    to_level: Level
    reason: str


class CallbackOutcome(StrEnum):
    """回访结果: what the citizen said, or that nobody answered."""

    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    UNSATISFIED = "unsatisfied"  # 不满意
    UNREACHABLE = "unreachable"  # 未接通 (tried again later)


class CallbackRecorded(Event):
    """回访: the citizen's satisfaction with the handling (`satisfied` stays for v1 readers: true for
    满意 and 基本满意)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.callback_recorded.v1"

    case_number: str
    satisfied: bool
    note: str | None = None
    outcome: CallbackOutcome | None = None
    attempt: int | None = None  # the how-many-th call of this callback


class CaseReopened(Event):
    """The citizen was not satisfied: the case goes back for rework (重办)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.reopened.v1"

    case_number: str
    reason: str


class CaseClosed(Event):
    """The router closed the loop on a case (结案)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.closed.v1"

    case_number: str
    dispatch_id: UUID
    unit_id: str
    reason: str
    disposition: str | None = None  # "satisfied" | "basically_satisfied" | "unreachable"


class DispositionCode(StrEnum):
    """Why a case is finished at the window (直接办结) or not accepted (不予受理)."""

    ANSWERED = "answered"  # 咨询已答复
    INFORMATION_GIVEN = "information_given"  # 已告知办理途径
    RESOLVED_ON_THE_SPOT = "resolved_on_the_spot"  # 当场解决
    NOT_GOVERNMENT_MATTER = "not_government_matter"  # 非政府职能
    IN_LITIGATION = "in_litigation"  # 已进入诉讼、仲裁、行政复议程序
    HANDLED_ALREADY = "handled_already"  # 已依法处理完毕，无新情况新理由
    INSUFFICIENT_INFORMATION = "insufficient_information"  # 诉求不明确、无法联系
    UNLAWFUL_DEMAND = "unlawful_demand"  # 诉求不合法
    OTHER = "other"


class WindowDisposition(BaseModel):
    """直接办结 or 不予受理 decided at the window by the clerk or hotline agent who took the report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    act: Literal["close", "refuse"]
    code: DispositionCode
    note: Annotated[str, Field(min_length=1, max_length=2000)]


class CaseClosedDirectly(Event):
    """直接办结: an operator finished the case without dispatching it (a question answered, a matter
    settled on the phone)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.closed_directly.v1"

    case_number: str
    code: DispositionCode
    note: LongText


class CaseRefused(Event):
    """不予受理: the case is not taken, with the reason the citizen is told."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.refused.v1"

    case_number: str
    code: DispositionCode
    note: LongText


class CaseMerged(Event):
    """并单: the case is merged into another (same matter); it keeps its trace and follows that case."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.merged.v1"

    case_number: str
    into_case_id: UUID
    into_case_number: str
    note: str | None = None


class ResolutionReviewed(Event):
    """办结审核: an operator approved a unit's resolution (on to the callback) or sent it back (rework)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.resolution_reviewed.v1"

    dispatch_id: UUID
    unit_id: str
    approved: bool
    note: str | None = None


class DispatchUrged(Event):
    """催办: an operator urges the holding unit (the unit receives it on its dispatch topic)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.urged.v1"

    dispatch_id: UUID
    unit_id: str
    note: LongText


class ClockPaused(Event):
    """A dispatch's deadline clocks stopped (挂起), with the reason."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.clock_paused.v1"

    dispatch_id: UUID
    unit_id: str
    clocks: list[str]
    reason: LongText


class ClockResumed(Event):
    """A dispatch's deadline clocks run again; their due times moved by the paused time."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.clock_resumed.v1"

    dispatch_id: UUID
    unit_id: str
    due: dict[str, datetime]  # clock kind -> its new due time


class ExtensionRequested(Event):
    """延期申请: a unit asks for more time to resolve (sent on its feedback topic)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.extension_requested.v1"

    dispatch_id: UUID
    unit_id: str
    requested_due_at: datetime
    reason: LongText


class ExtensionDecided(Event):
    """An operator approved (the resolve clock moves) or refused a unit's extension request."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.extension_decided.v1"

    dispatch_id: UUID
    unit_id: str
    approved: bool
    due_at: datetime | None = None  # the resolve clock's due time after the decision
    note: str | None = None


class ReturnHeldForReview(Event):
    """退单审核 / 转办审核: the lead unit's return or transfer of a matter whose returns are reviewed
    waits for an operator; the unit keeps the case meanwhile."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.return_held.v1"

    dispatch_id: UUID
    unit_id: str
    kind: Literal["return", "transfer"]
    reason: LongText
    target_unit_id: str | None = None
    target_kind: UnitKind | None = None


class ReturnReviewed(Event):
    """An operator approved a held return or transfer (the case is dispatched again) or refused it
    (the unit keeps the case, in the status `status_after`); the unit hears it on its dispatch topic."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.dispatch.return_reviewed.v1"

    dispatch_id: UUID
    unit_id: str
    kind: Literal["return", "transfer"]
    approved: bool
    status_after: Literal["dispatched", "accepted"] | None = None  # when refused
    note: str | None = None


class SplitPart(BaseModel):
    """One case a report was split into (拆单)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    case_id: UUID
    case_number: str
    category: str
    unit_id: str | None = None
    summary: str


class CaseSplit(Event):
    """拆单: one report split into cases for different units; the report ends as split and each part
    is a case of its own (numbered after the report) routed like any other."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.split.v1"

    case_number: str
    parts: list[SplitPart]
    note: str | None = None


class CitizenRating(StrEnum):
    """The citizen's own rating of a finished case (评价)."""

    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


class CaseRated(Event):
    """评价: the citizen rated the handling of their case through intake (case number and the
    reporter's verification); the comment is free text and may hold personal data."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.rated.v1"

    case_number: str
    rating: CitizenRating
    comment: Annotated[str, Field(max_length=2000)] | None = None


class ReopenRequested(Event):
    """The citizen asked through intake to reopen a case they are not satisfied with (申请重办); the
    router decides (a finished case within the reopening window goes back for rework)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.case.reopen_requested.v1"

    case_number: str
    reason: LongText


class MediationTransitioned(Event):
    """A mediation moved from one state to another (every transition is one of these)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.mediation.transitioned.v1"

    mediation_id: str
    origin: str  # "dispatch" | "court_referral"
    committee_id: str
    mediator_id: str
    from_status: str | None
    to_status: str
    note: str | None = None
    agreement: dict | None = None


class CourtReferral(Event):
    """诉前调解: a court refers a filed dispute to mediation before litigation."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.court.referral.v1"

    referral_id: Annotated[str, Field(min_length=1, max_length=64)]
    court_unit_id: str
    court_case_number: Annotated[str, Field(min_length=1, max_length=64)]
    division_code: DivisionCode
    summary: Annotated[str, Field(min_length=1, max_length=5000)]
    specialty: str | None = None


class ConfirmationDecided(Event):
    """The court's answer to a request for judicial confirmation (司法确认) of an agreement."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.court.confirmation_decided.v1"

    mediation_id: str
    confirmed: bool
    note: str | None = None


class MediationToCourt(Event):
    """Mediation → court: the outcome of a referral, a request for judicial confirmation, or a
    failed dispute handed on to litigation (kind: outcome | confirmation_request | litigation_handoff)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.mediation.to_court.v1"

    kind: str
    mediation_id: str
    referral_id: str | None = None
    outcome: str | None = None
    agreement: dict | None = None
    note: str | None = None


class FeedbackRejected(Contract):
    """Feedback a department sent that OneWindow refused, with a reason the department can act on."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.feedback.rejected.v1"

    about: str  # the refused event's ce_subject (the case id it claimed), or its ce_id
    feedback_id: str | None = None
    feedback_source: str | None = None
    feedback_type: str | None = None
    topic: str
    offset: int
    reason: str

    def subject(self) -> str:
        return self.about


class DigestPublished(Contract):
    """日研判: audit made a county's daily digest of a Beijing day (once per county and day). It says
    what the digest found, in counts and ids; the page itself is in audit's API (`page`)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.report.digest_published.v1"

    digest_id: UUID  # derived from county and day: the same digest has the same id wherever it is made
    division_code: DivisionCode  # the county (6 digits)
    day: date  # the Beijing calendar day digested
    indicators: str  # the version of the rules (services/audit/reference/indicators.toml)
    received: int
    new_risk_ids: list[str]
    rising_risk_ids: list[str]
    categories_up: list[str]
    places_up: list[str]
    overdue: int
    escalated: int
    repeat_reports: int
    page: str  # the digest's page in audit's API (operators and auditors of the county)

    def subject(self) -> str:
        return str(self.digest_id)


EVENT_MODELS: dict[str, type[Contract]] = {
    m.EVENT_TYPE: m
    for m in (
        ReturnHeldForReview,
        ReturnReviewed,
        CaseSplit,
        CaseRated,
        ReopenRequested,
        CaseClosedDirectly,
        CaseRefused,
        CaseMerged,
        ResolutionReviewed,
        DispatchUrged,
        ClockPaused,
        ClockResumed,
        ExtensionRequested,
        ExtensionDecided,
        CaseReceived,
        CaseDuplicateReported,
        SubmissionRejected,
        FeedbackRejected,
        MediationTransitioned,
        CourtReferral,
        ConfirmationDecided,
        MediationToCourt,
        CaseRouted,
        ManualTriageRequired,
        TriageCorrected,
        CaseDispatched,
        DispatchAccepted,
        DispatchResolved,
        CaseClosed,
        DispatchReturned,
        DispatchTransferred,
        DispatchProgress,
        SupervisionNotice,
        CaseEscalated,
        CallbackRecorded,
        CaseReopened,
        DigestPublished,
    )
}


def model_for(event_type: str) -> type[Contract]:
    """The contract model of an event type; KeyError for a type OneWindow does not know."""
    return EVENT_MODELS[event_type]


# ---------------------------------------------------------------- the risk register (mediation.risks)
# A risk (重大不稳定问题 / 矛盾纠纷) is its own entity: subject and Kafka key are the risk id.


class RiskStatus(StrEnum):
    """A risk's lifecycle: identified → assessed → guarded (包保) → resolving → closed or escalated."""

    IDENTIFIED = "identified"
    ASSESSED = "assessed"
    GUARDED = "guarded"
    RESOLVING = "resolving"
    CLOSED = "closed"
    ESCALATED = "escalated"


class RiskGrade(StrEnum):
    """五色预警: the grade of a risk's weighted score, most serious first."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"
    GREEN = "green"


class Guardian(BaseModel):
    """包保: the named leader and the unit answerable for a risk until it is settled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    leader: ShortText
    unit_id: ShortText


class RiskEvent(Contract):
    """An event about a risk of the register: subject and key are the risk id."""

    risk_id: UUID
    division_code: DivisionCode
    case_ids: list[UUID]
    score: Annotated[float, Field(ge=0, le=100)]
    colour: RiskGrade
    at: datetime

    def subject(self) -> str:
        return str(self.risk_id)


class RiskIdentified(RiskEvent):
    """A risk entered the register: put there by an operator from cases, or opened by mediation when
    related cases clustered (origin "cluster"). The title carries no personal data."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.risk.identified.v1"

    title: ShortText
    matter: str | None = None  # the catalogue category the cases share
    origin: Literal["operator", "cluster"]
    status: Literal[RiskStatus.IDENTIFIED] = RiskStatus.IDENTIFIED


class RiskChanged(RiskEvent):
    """A risk moved along its lifecycle, was rescored, or gained cases (every change is one)."""

    EVENT_TYPE: ClassVar[str] = "org.onewindow.risk.changed.v1"

    status: RiskStatus
    previous_status: RiskStatus
    previous_score: Annotated[float, Field(ge=0, le=100)]
    previous_colour: RiskGrade
    guardian: Guardian | None = None
    reason: Annotated[str, Field(max_length=2000)] | None = None


EVENT_MODELS.update({m.EVENT_TYPE: m for m in (RiskIdentified, RiskChanged)})
