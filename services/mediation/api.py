"""The mediators' HTTP API (role mediator: a token's subject is the mediator id) and the command
centre's figures (role operator or auditor, of the disputes within the token's jurisdiction)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.mediation import domain, handlers, storage
from shared.cloudevents import utcnow
from shared.http import Problem, jurisdiction, require_roles
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
