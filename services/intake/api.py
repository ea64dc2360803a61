"""Intake's HTTP window: submit a case, read one back (personal data masked). HTTP only: the writes
go through the GroupWriter, the reads through storage."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake import domain, storage
from shared.contracts.submissions import CaseSubmission
from shared.divisions import DivisionDirectory
from shared.grids import GridDirectory, GridRefusal, load_grids
from shared.http import Problem, may_act_in, require_roles
from shared.identity import TokenGrant, actor_of
from shared.settings import Settings
from shared import topics
from shared.cloudevents import CloudEvent, utcnow
from shared.contracts.events import CitizenRating
from shared.messaging.outbox import Outgoing
from shared.telemetry import current_traceparent

log = logging.getLogger(__name__)
IDEMPOTENCY_KEY = Header(default=None, alias="Idempotency-Key", min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")
MAX_BODY = 256 * 1024


# the reporter's phone number, given with the case number (as 12345 platforms ask)
Verification = Annotated[str, Field(min_length=5, max_length=20, pattern=r"^\+?[0-9][0-9 -]*$")]


class Rating(BaseModel):
    """评价: how the citizen rates the handling of their case."""

    model_config = ConfigDict(extra="forbid")
    verification: Verification
    rating: CitizenRating
    comment: Annotated[str, Field(max_length=2000)] | None = None


class ReopenRequest(BaseModel):
    """申请重办: why the citizen wants the case handled again."""

    model_config = ConfigDict(extra="forbid")
    verification: Verification
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


CASE_NUMBER = r"^[0-9A-Za-z-]{1,40}$"


def _mask_name(name: str | None) -> str | None:
    return None if not name else name[0] + "*" * (len(name) - 1)


def _mask_phone(phone: str | None) -> str | None:
    return None if not phone else phone[:3] + "****" + phone[-4:]


def _mask_id(number: str | None) -> str | None:
    return None if not number else number[:6] + "*" * 8 + number[-4:]


def build_router(settings: Settings, divisions: DivisionDirectory, grids: GridDirectory | None = None) -> APIRouter:
    """Intake's HTTP routes; `extra_schemas` on the router holds the body's sub-schemas for OpenAPI.
    A grid worker's report is checked against the grid directory (`grids`, default the shared one)."""
    router = APIRouter(prefix="/v1")
    grids = grids or load_grids()
    submitters = require_roles(settings, *domain.SUBMITTER_ROLES)
    readers = require_roles(settings, *domain.SUBMITTER_ROLES, "auditor")
    body_schema = CaseSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
    router.extra_schemas = body_schema.pop("$defs", {})  # merged into the OpenAPI components by entry

    @router.post(
        "/cases",
        status_code=202,
        summary="Submit a case at the one window",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
        responses={202: {"description": "accepted: the case (or the case this report repeats)"}},
    )
    async def submit_case(
        request: Request,
        grant: TokenGrant = Depends(submitters),
        idempotency_key: str | None = IDEMPOTENCY_KEY,
    ) -> JSONResponse:
        # the body is read by hand (not a pydantic parameter) to check division codes against the directory
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise Problem(400, "Malformed JSON", "the body is not a JSON document") from None
        try:
            submission = domain.validate_submission(data, divisions, grids)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        if not domain.may_submit(grant.role, submission.channel):
            raise Problem(403, "Channel not allowed", f"role {grant.role!r} may not submit via {submission.channel}")
        if not domain.may_dispose(grant.role, submission):
            raise Problem(403, "Disposition not allowed", f"role {grant.role!r} may not finish or refuse a case"
                          " at the window")
        if not may_act_in(grant, submission.location.division_code):
            raise Problem(403, "Outside jurisdiction", "this token may not submit cases for that division")
        if grant.role == "grid":
            try:
                submission = domain.grid_report(submission, grids, grant.subject, grant.grid)
            except GridRefusal as exc:
                raise Problem(403, "Outside your grid", str(exc)) from None
        outcome = await request.app.state.writer.submit(
            domain.Pending(submission, idempotency_key, grant.subject, current_traceparent(), actor=actor_of(grant))
        )
        if outcome.conflict:
            raise Problem(422, "Idempotency key reused", "this Idempotency-Key was used for a different submission",
                          type_="https://onewindow.example/problems/idempotency-key-reused")
        log.info("submission accepted", extra={"case_id": str(outcome.case_id), "duplicate": outcome.duplicate,
                                               "replayed": outcome.replayed})
        return JSONResponse(
            {"case_id": str(outcome.case_id), "case_number": outcome.case_number,
             "submission_id": str(outcome.submission_id), "duplicate": outcome.duplicate},
            status_code=202,
            headers={"Idempotent-Replayed": "true"} if outcome.replayed else None,
        )

    @router.get("/cases/{case_id}", summary="A submission and the current status of its case")
    async def get_case(case_id: UUID, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        row = await storage.get_case(request.app.state.runtime.pool, case_id)
        visible = row is not None and may_act_in(grant, row["division_code"]) and domain.may_read(
            grant.role, grant.subject, row["submitted_by"])
        if not visible:
            raise Problem(404, "Case not found")  # not 403: whether a case exists is not for everyone to know
        sub = json.loads(row["submission"]) if row["submission"] else {}
        people = [sub.get("reporter")] + sub.get("parties", []) if sub else []
        for person in filter(None, people):
            person.update(name=_mask_name(person.get("name")), phone=_mask_phone(person.get("phone")),
                          id_number=_mask_id(person.get("id_number")))
        return {
            "case_id": str(row["original_case_id"] or row["case_id"]),
            "submission_id": str(row["case_id"]),
            "case_number": row["case_number"],
            "status": row["case_status"],
            "duplicate": row["duplicate_of"] is not None,
            "received_at": row["received_at"].isoformat(),
            "submission": sub,
        }

    citizens = require_roles(settings, "citizen", "hotline", "clerk")

    async def _citizen_act(request: Request, grant: TokenGrant, case_number: str, verification: str, kind: str,
                           build) -> dict:
        """Verify the reporter, let the domain check the act, keep it and its event in one transaction."""
        async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
            row = await storage.case_for_citizen(conn, case_number)
            # an unknown number and a wrong verification get the same answer: nothing to learn by guessing
            if row is None or not may_act_in(grant, row["division_code"]) \
                    or not domain.reporter_verified(row["reporter_phone"], verification):
                raise Problem(404, "Case not found", "no case with that number and verification")
            status_now = domain.CaseStatus(row["status"])
            try:
                data, event_id = build(row, status_now)
            except domain.CitizenActRefused as exc:
                raise Problem(409, "Not allowed now", str(exc)) from None
            event = CloudEvent.of(data, source=domain.SOURCE, event_id=event_id, actor=actor_of(grant))
            event = event.with_traceparent(current_traceparent())
            if not await storage.record_citizen_act(conn, Outgoing(topics.CASES_RECEIVED, event), row["case_id"],
                                                    kind, grant.subject):
                raise Problem(409, "Already received", f"this {kind} was received before")
        request.app.state.runtime.relay.wake()
        log.info("citizen act accepted", extra={"case_id": str(row["case_id"]), "kind": kind})
        return {"case_id": str(row["case_id"]), "case_number": row["case_number"], "kind": kind, "accepted": True}

    @router.post("/cases/by-number/{case_number}/rating", status_code=202,
                 summary="评价: the citizen rates a resolved case (case number plus the reporter's phone)")
    async def rate(request: Request, body: Rating, case_number: str = Path(pattern=CASE_NUMBER),
                   grant: TokenGrant = Depends(citizens)) -> dict:
        def build(row, status_now):
            domain.check_rating(status_now, row["rated"])
            return domain.rating_event(row["case_id"], row["case_number"], body.rating, body.comment)
        return await _citizen_act(request, grant, case_number, body.verification, "rating", build)

    @router.post("/cases/by-number/{case_number}/reopen", status_code=202,
                 summary="申请重办: the citizen asks to reopen a resolved or recently closed case")
    async def reopen(request: Request, body: ReopenRequest, case_number: str = Path(pattern=CASE_NUMBER),
                     grant: TokenGrant = Depends(citizens)) -> dict:
        def build(row, status_now):
            domain.check_reopen(status_now, row["status_updated_at"], utcnow(),
                                timedelta(days=settings.intake_reopen_window_days))
            return domain.reopen_event(row["case_id"], row["case_number"], body.reason, row["status_updated_at"])
        return await _citizen_act(request, grant, case_number, body.verification, "reopen", build)

    return router
