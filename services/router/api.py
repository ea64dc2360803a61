"""The router's operator HTTP API: queues, a case's routing state, callback (回访), manual dispatch,
and pausing deadline clocks. Thin: each route runs one action of `handlers` in a transaction."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from services.router import domain, storage
from services.router.handlers import manual_dispatch, pause_or_resume, record_callback
from services.router.workflow import RoutingDesk
from shared.cloudevents import utcnow
from shared.http import Problem, may_act_in, require_roles
from shared.refusals import ActionRefused
from shared.identity import TokenGrant, actor_of
from shared.settings import Settings
from shared.telemetry import context_from, current_traceparent, tracer


class Callback(BaseModel):
    """The citizen's answer to the satisfaction call."""

    model_config = ConfigDict(extra="forbid")
    satisfied: bool
    note: Annotated[str, Field(max_length=2000)] | None = None


class ManualDispatch(BaseModel):
    """An operator's dispatch: the category, and optionally the unit (else the rules choose)."""

    model_config = ConfigDict(extra="forbid")
    category: Annotated[str, Field(min_length=1, max_length=64)]
    unit_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


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
        return {"case_id": s.case_id, "case_number": s.case_number, "status": s.status.value,
                "category": s.category, "risk": s.risk.value, "division_code": s.division_code,
                "rule_ids": list(s.rule_ids), "catalogue_version": s.catalogue_version, "returns": s.returns,
                "reopened": s.reopened, "repeats": s.repeats,
                "dispatches": [{**d.__dict__, "status": d.status.value} for d in s.dispatches]}

    def _clock_view(c: domain.Clock) -> dict:
        return {"kind": c.kind, "due_at": c.due_at.isoformat(), "paused": c.paused_at is not None}

    @api.get("/contracts/departments/{kind}.json", summary="A department's AsyncAPI document")
    async def department_contract(kind: Literal["police", "court", "petition", "mediation"]) -> dict:
        from shared.contracts.asyncapi import department_document

        return department_document(kind)

    @api.get("/queues/{name}", summary="The manual-triage or callback queue")
    async def get_queue(name: Literal["manual", "callback"], request: Request, grant=Depends(operators)) -> dict:
        status = domain.CaseStatus.MANUAL if name == "manual" else domain.CaseStatus.AWAITING_CALLBACK
        rows = await storage.queue(request.app.state.runtime.pool, status, grant.divisions)
        return {"queue": name, "cases": [
            {**{k: (str(v) if k == "case_id" else v) for k, v in dict(r).items() if k not in ("decided_at", "updated_at")},
             "since": r["updated_at"].isoformat()}
            for r in rows]}

    @api.get("/cases/{case_id}", summary="A case's routing state, explained")
    async def get_case(case_id: UUID, request: Request, grant=Depends(operators)) -> dict:
        async def action(conn, _tp):
            return _view((await storage.load_states(conn, [str(case_id)]))[str(case_id)])
        return await _run(request, grant, case_id, action)

    @api.post("/cases/{case_id}/callback", summary="Record the citizen's satisfaction (回访)")
    async def callback(case_id: UUID, body: Callback, request: Request, grant=Depends(callers)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: record_callback(
            conn, desk, case_id, body.satisfied, body.note, tp, actor_of(grant)), "router.callback"))

    @api.post("/cases/{case_id}/dispatch", summary="Dispatch from the manual queue, or reassign")
    async def dispatch(case_id: UUID, body: ManualDispatch, request: Request, grant=Depends(operators)) -> dict:
        return _view(await _run(request, grant, case_id, lambda conn, tp: manual_dispatch(
            conn, desk, case_id, body.category, body.unit_id, tp, actor_of(grant)), "router.manual_dispatch"))

    @api.post("/dispatches/{dispatch_id}/{verb}", summary="Pause or resume a dispatch's deadline clocks")
    async def clocks(dispatch_id: UUID, verb: Literal["pause", "resume"], body: ClockAction, request: Request,
                     grant=Depends(operators)) -> dict:
        case_id = await storage.case_of_dispatch(request.app.state.runtime.pool, dispatch_id)
        if case_id is None:
            raise Problem(404, "No such dispatch")
        clocks_now = await _run(request, grant, case_id, lambda conn, _tp: pause_or_resume(
            conn, desk, dispatch_id, verb == "pause", body.reason, utcnow()), f"router.clocks.{verb}")
        return {"dispatch_id": str(dispatch_id), "clocks": [_clock_view(c) for c in clocks_now]}

    return api
