"""Intake's HTTP handlers: thin — validate, authorise, store with the outbox, answer."""

from __future__ import annotations

import logging
import uuid
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from services.intake import domain, storage
from shared import topics
from shared.cloudevents import CloudEvent, derive_id, utcnow
from shared.http import Problem, may_act_in, require_roles
from shared.messaging.outbox import Outgoing, add_to_outbox
from shared.settings import Settings, TokenGrant
from shared.telemetry import current_traceparent

log = logging.getLogger(__name__)
IDEMPOTENCY_KEY = Header(default=None, alias="Idempotency-Key", min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")


def _mask_name(name: str | None) -> str | None:
    return None if not name else name[0] + "*" * (len(name) - 1)


def _mask_phone(phone: str | None) -> str | None:
    return None if not phone else phone[:3] + "****" + phone[-4:]


def build_router(settings: Settings) -> APIRouter:
    """Intake's routes, bound to its settings (tokens)."""
    router = APIRouter(prefix="/v1")
    submitters = require_roles(settings, "clerk", "operator")
    readers = require_roles(settings, "clerk", "operator", "auditor")

    @router.post("/cases", status_code=202, summary="Submit a case at the one window")
    async def submit_case(
        submission: domain.CaseSubmission,
        request: Request,
        grant: TokenGrant = Depends(submitters),
        idempotency_key: str | None = IDEMPOTENCY_KEY,
    ) -> JSONResponse:
        if not may_act_in(grant, submission.location.division_code):
            raise Problem(403, "Outside jurisdiction", "this token may not submit cases for that division")
        runtime = request.app.state.runtime
        pool: asyncpg.Pool = runtime.pool
        if idempotency_key and (earlier := await storage.find_by_idempotency_key(pool, idempotency_key)):
            return _replayed(earlier, submission, grant)
        received_at = utcnow()
        case_id = uuid.uuid4()
        try:
            async with pool.acquire() as conn, conn.transaction():
                prefix = domain.case_number_prefix(submission.location.division_code, received_at)
                case_number = domain.format_case_number(prefix, await storage.next_case_sequence(conn, prefix))
                await storage.insert_case(
                    conn,
                    case_id=case_id,
                    case_number=case_number,
                    sub=submission,
                    idempotency_key=idempotency_key,
                    submitted_by=grant.subject,
                    received_at=received_at,
                )
                event = CloudEvent.of(
                    domain.received_event(case_id, case_number, submission, received_at),
                    source=domain.SOURCE,
                    event_id=derive_id(domain.SOURCE, case_id, "received"),
                    time=received_at,
                )
                outgoing = Outgoing(topics.CASES_RECEIVED, event.with_traceparent(current_traceparent()))
                await add_to_outbox(conn, [outgoing])
        except asyncpg.UniqueViolationError:
            # the same idempotency key raced us: answer with the case the other request created
            earlier = await storage.find_by_idempotency_key(pool, idempotency_key or "")
            if earlier is None:
                raise
            return _replayed(earlier, submission, grant)
        runtime.relay.wake()
        log.info("case received", extra={"case_id": str(case_id), "case_number": case_number})
        return JSONResponse({"case_id": str(case_id), "case_number": case_number}, status_code=202)

    @router.get("/cases/{case_id}", summary="A submitted case and its status")
    async def get_case(case_id: UUID, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        row = await storage.get_case(request.app.state.runtime.pool, case_id)
        if row is None or not may_act_in(grant, row["division_code"]):
            raise Problem(404, "Case not found")
        return {
            "case_id": str(row["case_id"]),
            "case_number": row["case_number"],
            "status": "received",
            "channel": row["channel"],
            "title": row["title"],
            "description": row["description"],
            "category": row["category"],
            "location": {"division_code": row["division_code"], "grid_id": row["grid_id"], "address": row["address"]},
            "reporter": {"name": _mask_name(row["reporter_name"]), "phone": _mask_phone(row["reporter_phone"])},
            "received_at": row["received_at"].isoformat(),
        }

    return router


def _replayed(earlier: asyncpg.Record, submission: domain.CaseSubmission, grant: TokenGrant) -> JSONResponse:
    if earlier["request_hash"] != submission.fingerprint() or earlier["submitted_by"] != grant.subject:
        raise Problem(
            422,
            "Idempotency key reused",
            "this Idempotency-Key was used for a different submission",
            type_="https://onewindow.example/problems/idempotency-key-reused",
        )
    return JSONResponse(
        {"case_id": str(earlier["case_id"]), "case_number": earlier["case_number"]},
        status_code=202,
        headers={"Idempotent-Replayed": "true"},
    )
