"""The router's operator HTTP API: the command centre's queues (manual, callback, review, overdue), a
case's routing state, and every act of the workflow — dispatch, 直接办结, 不予受理, 办结审核, 并单,
callback (回访), 催办, 督办单, extension decisions, pausing clocks. Thin: each route runs one action
of `handlers` in a transaction, with the operator as the actor of the events it causes."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from opentelemetry import trace
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.router import domain, handlers, lifecycle, storage
from services.router.domain import ClockColour
from services.router.workflow import RoutingDesk, SplitRequest
from shared.cloudevents import utcnow
from shared.contracts.events import CallbackOutcome, DispositionCode
from shared.http import Problem, may_act_in, require_roles
from shared.identity import TokenGrant, actor_of
from shared.refusals import ActionRefused
from shared.settings import Settings
from shared.telemetry import context_from, current_traceparent, tracer


Note = Annotated[str, Field(min_length=1, max_length=2000)]


class Callback(BaseModel):
    """The citizen's answer to the satisfaction call (回访): an outcome, or (v1) satisfied true/false."""

    model_config = ConfigDict(extra="forbid")
    outcome: CallbackOutcome | None = None
    satisfied: bool | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> "Callback":
        if (self.outcome is None) == (self.satisfied is None):
            raise ValueError("give either outcome or satisfied")
        return self

    def the_outcome(self) -> CallbackOutcome:
        """The outcome, also for a v1 client's satisfied flag."""
        if self.outcome is not None:
            return self.outcome
        return CallbackOutcome.SATISFIED if self.satisfied else CallbackOutcome.UNSATISFIED


class ManualDispatch(BaseModel):
    """An operator's dispatch: a catalogue category, and optionally the unit (else the rules choose);
    or, when no item fits, a unit and a free-text category."""

    model_config = ConfigDict(extra="forbid")
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    category_text: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    unit_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Disposition(BaseModel):
    """直接办结 or 不予受理: a reason code and what the citizen is told."""

    model_config = ConfigDict(extra="forbid")
    code: DispositionCode
    note: Note


class Review(BaseModel):
    """办结审核 or an extension decision: approved or not, why."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    note: Note | None = None


class ExtensionDecision(Review):
    """An extension decision; an approval may set another due time than the unit asked for."""

    due_at: AwareDatetime | None = None


class Merge(BaseModel):
    """并单: the case to merge into."""

    model_config = ConfigDict(extra="forbid")
    into_case_id: UUID
    note: Note | None = None


class SplitPartBody(ManualDispatch):
    """One case of a split: dispatched as an operator's dispatch is, with the report's part it covers."""

    summary: Annotated[str, Field(min_length=1, max_length=5000)]


class Split(BaseModel):
    """拆单: the cases one report is split into (2 to 9)."""

    model_config = ConfigDict(extra="forbid")
    parts: Annotated[list[SplitPartBody], Field(min_length=2, max_length=9)]
    note: Note | None = None


class Urge(BaseModel):
    """催办: what the unit is reminded of."""

    model_config = ConfigDict(extra="forbid")
    note: Note


class SupervisionOrder(BaseModel):
    """A 督办单 by hand: its colour and what it says."""

    model_config = ConfigDict(extra="forbid")
    colour: ClockColour
    note: Note


class ClockAction(BaseModel):
    """Why a clock is paused or resumed (recorded)."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


def build_api(settings: Settings, desk: RoutingDesk) -> APIRouter:
    """The operator routes, bound to the settings (tokens) and the routing desk's reference data."""
    api = APIRouter(prefix="/v1")
    operators = require_roles(settings, "operator")
    callers = require_roles(settings, "operator", "hotline")

    async def _run(request: Request, grant: TokenGrant, case_id: UUID, action, name: str = "router.action"):
        """Run an action in one transaction, inside the case's own trace (linked to this HTTP request).
        A refused act (ActionRefused) is answered as problem details by the app."""
        pool = request.app.state.runtime.pool
        async with pool.acquire() as conn, conn.transaction():
            access = await storage.case_access(conn, case_id)
            if access is None or not may_act_in(grant, access[0]):
                raise ActionRefused(404, "Case not found", "no such case in your jurisdiction")
            http_span = trace.get_current_span().get_span_context()
            with tracer().start_as_current_span(name, context=context_from(access[1]),
                                                links=[trace.Link(http_span)] if http_span.is_valid else []):
                result = await action(conn, current_traceparent())
        request.app.state.runtime.relay.wake()
        return result

    def _view(s: domain.RoutingState) -> dict:
        # `status` in the words intake and audit use (shared.contracts.status); `routing_status` the router's own
        return {"case_id": s.case_id, "case_number": s.case_number, "status": domain.shared_status(s).value,
                "routing_status": s.status.value, "split_into": s.facts.get("split_into"),
                "split_from": s.facts.get("split_from"), "citizen_rating": s.facts.get("citizen_rating"),
                "category": s.category, "risk": s.risk.value, "division_code": s.division_code,
                "rule_ids": list(s.rule_ids), "catalogue_version": s.catalogue_version, "returns": s.returns,
                "reopened": s.reopened, "repeats": s.repeats, "merged_into": s.facts.get("merged_into"),
                "acts": [a.value for a in lifecycle.operator_acts_in(s.status)],
                "dispatches": [{**d.__dict__, "status": d.status.value} for d in s.dispatches]}

    def _clock_view(c: domain.Clock) -> dict:
        return {"kind": c.kind, "due_at": c.due_at.isoformat(), "paused": c.paused_at is not None}

    @api.get("/contracts/departments/{kind}.json", summary="A department's AsyncAPI document")
    async def department_contract(kind: Literal["police", "court", "petition", "mediation"]) -> dict:
        from shared.contracts.asyncapi import department_document

        return department_document(kind)

    @api.get("/reference", summary="The unit directory and the matter catalogue's items, with their names"
             " (what the console shows instead of ids)")
    async def reference(grant=Depends(operators)) -> dict:
        return {"units_version": desk.units.version, "catalogue_version": desk.catalogue.version,
                "units": [{"id": u.id, "name": u.name, "kind": u.kind, "level": u.level, "serves": list(u.serves)}
                          for u in desk.units.unit],
                "categories": [{"code": c.code, "name": c.name, "path": list(c.path), "unit_kind": c.unit_kind}
                               for c in desk.catalogue.category]}

    @api.get("/queues/{name}", summary="A work queue: manual triage, callback, 办结审核, 退单/转办审核, 延期申请 or"
                                       " overdue (red)")
    async def get_queue(name: Literal["manual", "callback", "review", "returns", "extension", "overdue"],
                        request: Request,
                        grant=Depends(operators)) -> dict:
        rows = await storage.queue(request.app.state.runtime.pool, name, grant.divisions)
        return {"queue": name, "cases": [
            {**{k: (str(v) if k == "case_id" else v) for k, v in dict(r).items() if k not in ("decided_at", "updated_at")},
             "since": r["updated_at"].isoformat()}
            for r in rows]}

    @api.get("/cases/{case_id}", summary="A case's routing state, explained")
    async def get_case(case_id: UUID, request: Request, grant=Depends(operators)) -> dict:
        async def action(conn, _tp):
            return _view((await storage.load_states(conn, [str(case_id)]))[str(case_id)])
        return await _run(request, grant, case_id, action)

    @api.post("/cases/{case_id}/callback", summary="Record the callback's outcome (回访: 满意/基本满意/不满意/未接通)")
    async def callback(case_id: UUID, body: Callback, request: Request, grant=Depends(callers)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.record_callback(
            conn, desk, case_id, body.the_outcome(), body.note, tp, actor_of(grant)), "router.callback"))

    @api.post("/cases/{case_id}/dispatch", summary="Dispatch from the manual queue, or reassign (also overdue cases)")
    async def dispatch(case_id: UUID, body: ManualDispatch, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.manual_dispatch(
            conn, desk, case_id, body.category, body.unit_id, tp, actor_of(grant), body.category_text),
            "router.manual_dispatch"))

    @api.post("/cases/{case_id}/close", summary="直接办结: finish a case from the manual queue without dispatching it")
    async def close_directly(case_id: UUID, body: Disposition, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.dispose(
            conn, desk, case_id, lifecycle.Act.CLOSE_DIRECTLY, body.code, body.note, tp, actor_of(grant)),
            "router.close_directly"))

    @api.post("/cases/{case_id}/refuse", summary="不予受理: refuse a case from the manual queue, with the reason")
    async def refuse(case_id: UUID, body: Disposition, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.dispose(
            conn, desk, case_id, lifecycle.Act.REFUSE, body.code, body.note, tp, actor_of(grant)),
            "router.refuse"))

    @api.post("/cases/{case_id}/review", summary="办结审核: approve the resolution, or send it back for rework")
    async def review(case_id: UUID, body: Review, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.review_resolution(
            conn, desk, case_id, body.approved, body.note, tp, actor_of(grant)), "router.review"))

    @api.post("/cases/{case_id}/return-review", summary="退单审核 / 转办审核: approve the unit's held return or"
                                                        " transfer, or refuse it (the unit keeps the case)")
    async def return_review(case_id: UUID, body: Review, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.review_return(
            conn, desk, case_id, body.approved, body.note, tp, actor_of(grant)), "router.return_review"))

    @api.post("/cases/{case_id}/split", summary="拆单: split a report in the manual queue into cases for different"
                                                " units; answers the report and its new cases")
    async def split(case_id: UUID, body: Split, request: Request, grant=Depends(operators)) -> dict:
        parts = [SplitRequest(p.summary, p.category, p.category_text, p.unit_id) for p in body.parts]
        report, children = await _run(request, grant, case_id, lambda conn, tp: handlers.split(
            conn, desk, case_id, parts, body.note, tp, actor_of(grant)), "router.split")
        return {**_view(report), "cases": [_view(c) for c in children]}

    @api.post("/cases/{case_id}/merge", summary="并单: merge the case into another; it follows that case")
    async def merge(case_id: UUID, body: Merge, request: Request, grant=Depends(operators)) -> dict:
        async with request.app.state.runtime.pool.acquire() as conn:
            other = await storage.case_access(conn, body.into_case_id)
        if other is None or not may_act_in(grant, other[0]):
            raise Problem(404, "Case not found", "no case to merge into in your jurisdiction")
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.merge(
            conn, desk, case_id, body.into_case_id, body.note, tp, actor_of(grant)), "router.merge"))

    async def _dispatch_case(request: Request, dispatch_id: UUID) -> UUID:
        case_id = await storage.case_of_dispatch(request.app.state.runtime.pool, dispatch_id)
        if case_id is None:
            raise Problem(404, "No such dispatch")
        return case_id

    @api.post("/dispatches/{dispatch_id}/urge", summary="催办: remind the holding unit")
    async def urge(dispatch_id: UUID, body: Urge, request: Request, grant=Depends(operators)) -> dict:
        case_id = await _dispatch_case(request, dispatch_id)
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.urge(
            conn, desk, case_id, dispatch_id, body.note, tp, actor_of(grant), utcnow()), "router.urge"))

    @api.post("/dispatches/{dispatch_id}/supervise", summary="督办单: a white, yellow or red supervision order by hand")
    async def supervise(dispatch_id: UUID, body: SupervisionOrder, request: Request, grant=Depends(operators)) -> dict:
        case_id = await _dispatch_case(request, dispatch_id)
        return _view(await _run(request, grant, case_id, lambda conn, tp: handlers.supervise_by_hand(
            conn, desk, case_id, dispatch_id, body.colour, body.note, tp, actor_of(grant), utcnow()),
            "router.supervise"))

    @api.post("/dispatches/{dispatch_id}/extension", summary="Decide a unit's extension request (延期申请)")
    async def extension(dispatch_id: UUID, body: ExtensionDecision, request: Request,
                        grant=Depends(operators)) -> dict:
        case_id = await _dispatch_case(request, dispatch_id)
        clocks_now = await _run(request, grant, case_id, lambda conn, tp: handlers.decide_extension(
            conn, desk, case_id, dispatch_id, body.approved, body.due_at, body.note, tp, actor_of(grant)),
            "router.extension")
        return {"dispatch_id": str(dispatch_id), "approved": body.approved,
                "clocks": [_clock_view(c) for c in clocks_now]}

    @api.post("/dispatches/{dispatch_id}/{verb}", summary="Pause or resume a dispatch's deadline clocks")
    async def clocks(dispatch_id: UUID, verb: Literal["pause", "resume"], body: ClockAction, request: Request,
                     grant=Depends(operators)) -> dict:
        case_id = await _dispatch_case(request, dispatch_id)
        clocks_now = await _run(request, grant, case_id, lambda conn, tp: handlers.pause_or_resume(
            conn, desk, case_id, dispatch_id, verb == "pause", body.reason, utcnow(), tp, actor_of(grant)),
            f"router.clocks.{verb}")
        return {"dispatch_id": str(dispatch_id), "clocks": [_clock_view(c) for c in clocks_now]}

    return api
