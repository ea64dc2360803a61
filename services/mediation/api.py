"""The mediators' HTTP API (role mediator: a token's subject is the mediator id), the command
centre's figures (role operator or auditor, of the disputes within the token's jurisdiction) and the
risk register (operators in jurisdiction list, read, open and act on risks; auditors read; refused
transitions are answered 409)."""

from __future__ import annotations

from typing import Annotated, Literal

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.mediation import domain, handlers, risk_handlers, risks, storage
from shared.cloudevents import utcnow
from shared.contracts.events import RiskGrade, RiskStatus
from shared.http import Problem, jurisdiction, may_act_in, require_roles
from shared.identity import TokenGrant, actor_of
from shared.settings import Settings


class Action(BaseModel):
    """A step of the mediation, with what the mediator records."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["schedule", "hold", "agree", "fail", "withdraw", "extend", "confirm"]
    note: Annotated[str, Field(max_length=5000)] | None = None
    agreement_text: Annotated[str, Field(min_length=1, max_length=20000)] | None = None
    amount: Annotated[float, Field(ge=0, le=1e9)] | None = None
    next_step: Literal["litigation", "router"] | None = None  # after a failure: the party's choice


def _view(m: domain.Mediation) -> dict:
    """A mediation as the API shows it."""
    return {"mediation_id": m.mediation_id, "case_id": m.case_id, "origin": m.origin, "status": m.status.value,
            "committee_id": m.committee_id, "mediator_id": m.mediator_id, "sessions": m.sessions,
            "deadline": m.deadline.isoformat(), "extended": m.extended, "agreement": m.agreement,
            "history": m.history}


def build_api(settings: Settings, directory: domain.Directory) -> APIRouter:
    """Mediator and figures routes."""
    api = APIRouter(prefix="/v1")
    mediators = require_roles(settings, "mediator")
    operators = require_roles(settings, "operator", "auditor")

    @api.get("/mediations", summary="My mediations (open first)")
    async def mine(request: Request, grant: TokenGrant = Depends(mediators)) -> dict:
        mediations = await storage.of_mediator(request.app.state.runtime.pool, grant.subject)
        return {"mediator_id": grant.subject, "mediations": [_view(m) for m in mediations]}

    @api.post("/mediations/{mediation_id}/actions", summary="Schedule, hold a session, record an outcome, …")
    async def act(mediation_id: str, body: Action, request: Request, grant: TokenGrant = Depends(mediators)) -> dict:
        if body.action == "agree" and not body.agreement_text:
            raise Problem(422, "Agreement text required", "an agreement records its text (and amounts)")
        if body.action == "fail" and body.next_step is None:
            raise Problem(422, "Next step required", "after a failure the party chooses litigation or router")
        agreement = {"text": body.agreement_text, "amount": body.amount} if body.action == "agree" else None
        runtime = request.app.state.runtime
        async with runtime.pool.acquire() as conn, conn.transaction():
            m = await handlers.act(conn, mediation_id, grant.subject, body.action, utcnow(), note=body.note,
                                   agreement=agreement, next_step=body.next_step, actor=actor_of(grant))
        runtime.relay.wake()
        return _view(m)

    @api.get("/figures", summary="调解成功率, days to outcome and open load (within the token's jurisdiction)")
    async def figures(request: Request, grant: TokenGrant = Depends(operators)) -> dict:
        pool = request.app.state.runtime.pool
        scope = jurisdiction(grant)
        rows = [dict(r) for r in await storage.figures(pool, scope)]
        return domain.committee_figures(rows, await storage.open_loads(pool, scope), directory)

    return api


# ---------------------------------------------------------------- the risk register

Text = Annotated[str, Field(min_length=1, max_length=200)]


class NewRisk(BaseModel):
    """An operator puts related cases on the register (no personal data in the title)."""

    model_config = ConfigDict(extra="forbid")
    case_ids: Annotated[list[UUID], Field(min_length=1, max_length=100)]
    title: Text
    assessment: Annotated[float, Field(ge=0, le=1)] | None = None


class GuardianIn(BaseModel):
    """包保: a named leader and the unit answerable."""

    model_config = ConfigDict(extra="forbid")
    leader: Text
    unit_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CareIn(BaseModel):
    """三色户: a household (by its register reference, never a name) under care, and who carries it."""

    model_config = ConfigDict(extra="forbid")
    household: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    colour: Literal["red", "yellow", "green"]
    level: Literal["village", "town", "county"]


class RiskAct(BaseModel):
    """An act on a risk with what it records."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["assess", "guard", "resolve", "close", "escalate", "care"]
    assessment: Annotated[float, Field(ge=0, le=1)] | None = None
    guardian: GuardianIn | None = None
    care: CareIn | None = None
    reason: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


def risk_view(r: risks.Risk) -> dict:
    """A risk as the API shows it."""
    return {"risk_id": r.risk_id, "division_code": r.division_code, "title": r.title, "matter": r.matter,
            "origin": r.origin, "status": r.status.value, "case_ids": r.case_ids, "score": r.score,
            "colour": r.colour.value, "factors": r.factors, "guardian": r.guardian, "care": r.care,
            "opened_at": r.opened_at.isoformat(), "history": r.history}


def build_risk_api(settings: Settings, register: risk_handlers.Register) -> APIRouter:
    """Routes of the register."""
    api = APIRouter(prefix="/v1/risks", tags=["risks"])
    readers = require_roles(settings, "operator", "auditor")
    operators = require_roles(settings, "operator")

    @api.get("", summary="The register (open first, highest score first) within the token's jurisdiction")
    async def listing(request: Request, grant: TokenGrant = Depends(readers), status: RiskStatus | None = None,
                      colour: RiskGrade | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
        found = await storage.risk_listing(request.app.state.runtime.pool, jurisdiction(grant),
                                           status.value if status else None, colour.value if colour else None, limit)
        return {"risks": [risk_view(r) for r in found]}

    @api.get("/{risk_id}", summary="One risk with its history")
    async def one(risk_id: UUID, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        async with request.app.state.runtime.pool.acquire() as conn:
            risk = await storage.load_risk(conn, str(risk_id))
        if risk is None or not may_act_in(grant, risk.division_code):
            raise Problem(404, "Risk not found", "no such risk within your divisions")
        return risk_view(risk)

    @api.post("", status_code=201, summary="Put related cases on the register as one risk")
    async def create(body: NewRisk, request: Request, grant: TokenGrant = Depends(operators)) -> dict:
        runtime = request.app.state.runtime
        async with runtime.pool.acquire() as conn, conn.transaction():
            risk = await risk_handlers.identify(conn, register, [str(c) for c in body.case_ids], body.title,
                                                body.assessment, lambda d: may_act_in(grant, d), actor_of(grant))
        runtime.relay.wake()
        return risk_view(risk)

    @api.post("/{risk_id}/actions", summary="Assess, assign 包保, resolve, close, escalate, put a household under care")
    async def act(risk_id: UUID, body: RiskAct, request: Request, grant: TokenGrant = Depends(operators)) -> dict:
        runtime = request.app.state.runtime
        async with runtime.pool.acquire() as conn, conn.transaction():
            risk = await risk_handlers.act(
                conn, register, str(risk_id), body.action, lambda d: may_act_in(grant, d), actor_of(grant),
                assessment=body.assessment, guardian=body.guardian.model_dump() if body.guardian else None,
                care=body.care.model_dump() if body.care else None, reason=body.reason)
        runtime.relay.wake()
        return risk_view(risk)

    return api
