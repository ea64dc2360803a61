"""Intake's HTTP window: submit a case, read one back (personal data masked). HTTP only: the writes
go through the GroupWriter, the reads through storage.

POST /v1/cases is the hot path: `SubmitFastPath` answers it as a plain ASGI app in front of the
FastAPI app — past FastAPI's routing, dependency solving, response handling and the OTel
instrumentation's per-request route lookup — with the same body limit and CORS, and the same checks in the same order as the FastAPI route that documents it in OpenAPI (and serves
it when the fast path is off): authentication, the Idempotency-Key header, the body, the grant's
rights; `CaseWindow.accept` is shared by both.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from opentelemetry import propagate, trace
from starlette._utils import get_route_path

from services.intake import domain, storage
from services.intake.handlers import GroupWriter
from shared.contracts.submissions import CaseSubmission
from shared.divisions import DivisionDirectory
from shared.grids import GridDirectory, GridRefusal, load_grids
from shared.http import BodyLimit, Problem, authenticate, may_act_in, problem_of, require_roles, token_verifier, with_cors
from shared.identity import TokenGrant, actor_of
from shared.settings import Settings
from shared import topics
from shared.cloudevents import CloudEvent, utcnow
from shared.contracts.events import CitizenRating
from shared.messaging.outbox import Outgoing
from shared.telemetry import current_traceparent

log = logging.getLogger(__name__)
KEY_RULES = {"min_length": 8, "max_length": 128, "pattern": r"^[\x21-\x7e]+$"}
IDEMPOTENCY_KEY = Header(default=None, alias="Idempotency-Key", **KEY_RULES)
_KEY = TypeAdapter(Annotated[str, Field(**KEY_RULES)])  # the header's rules, for the fast path
MAX_BODY = 256 * 1024
SUBMIT_PATH = "/v1/cases"


class CaseWindow:
    """What POST /v1/cases does once the caller is authenticated and the Idempotency-Key header is
    valid: check the body and the grant's rights to it, write it (group commit), answer."""

    def __init__(self, settings: Settings, divisions: DivisionDirectory, grids: GridDirectory) -> None:
        self.verifier = token_verifier(settings)
        self.divisions, self.grids = divisions, grids

    async def accept(self, writer: GroupWriter, grant: TokenGrant, idempotency_key: str | None,
                     body: bytes) -> tuple[bytes, bool]:
        """The 202 answer's JSON and whether it repeats an earlier one (Idempotent-Replayed); a Problem
        or a RequestValidationError otherwise."""
        # the body is checked here (not as a pydantic parameter): division codes against the directory
        try:
            submission = domain.validate_submission_json(body, self.divisions, self.grids)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        except ValueError:
            raise Problem(400, "Malformed JSON", "the body is not a JSON document") from None
        if not domain.may_submit(grant.role, submission.channel):
            raise Problem(403, "Channel not allowed", f"role {grant.role!r} may not submit via {submission.channel}")
        if not domain.may_dispose(grant.role, submission):
            raise Problem(403, "Disposition not allowed", f"role {grant.role!r} may not finish or refuse a case"
                          " at the window")
        if not may_act_in(grant, submission.location.division_code):
            raise Problem(403, "Outside jurisdiction", "this token may not submit cases for that division")
        if grant.role == "grid":
            try:
                submission = domain.grid_report(submission, self.grids, grant.subject, grant.grid)
            except GridRefusal as exc:
                raise Problem(403, "Outside your grid", str(exc)) from None
        outcome = await writer.submit(
            domain.Pending(submission, idempotency_key, grant.subject, current_traceparent(), actor=actor_of(grant))
        )
        if outcome.conflict:
            raise Problem(422, "Idempotency key reused", "this Idempotency-Key was used for a different submission",
                          type_="https://onewindow.example/problems/idempotency-key-reused")
        log.info("submission accepted", extra={"case_id": str(outcome.case_id), "duplicate": outcome.duplicate,
                                               "replayed": outcome.replayed})
        answer = {"case_id": str(outcome.case_id), "case_number": outcome.case_number,
                  "submission_id": str(outcome.submission_id), "duplicate": outcome.duplicate}
        return orjson.dumps(answer), outcome.replayed


class SubmitFastPath:
    """ASGI app in front of intake's FastAPI app: it answers POST /v1/cases itself (see the module's doc)
    and hands every other request on. Outermost, so it makes its own HTTP server span — the one span of
    the request, continuing the caller's `traceparent`, where the case's trace starts — and applies the
    same CORS and body limit as the FastAPI app's middleware. Refusals are the same problem details,
    built by the same functions."""

    def __init__(self, app, window: CaseWindow, settings: Settings, max_body: int) -> None:
        self.app, self.window = app, window
        self.answer = with_cors(BodyLimit(self._answer, max_body), settings)
        self._tracer: trace.Tracer | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or get_route_path(scope) != SUBMIT_PATH:
            return await self.app(scope, receive, send)
        if self._tracer is None:  # the service's tracer provider is set up by then (lifespan)
            self._tracer = trace.get_tracer("onewindow.intake.http")
        carrier = {name.decode(): value.decode("latin-1")
                   for name, value in scope["headers"] if name == b"traceparent" or name == b"tracestate"}
        status = None

        async def sent(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
                "POST " + SUBMIT_PATH, context=propagate.extract(carrier) if carrier else None,
                kind=trace.SpanKind.SERVER, attributes={
                    "http.request.method": "POST", "http.route": SUBMIT_PATH, "url.path": scope["path"],
                    "url.scheme": scope.get("scheme", "http"), "network.protocol.version": scope.get("http_version", "")
                }) as span:
            await self.answer(scope, receive, sent)
            if status is not None and span.is_recording():
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)

    async def _answer(self, scope, receive, send) -> None:
        try:
            authorization = key = None
            for name, value in scope["headers"]:  # the first of a repeated header counts, as in Starlette
                if name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
                elif name == b"idempotency-key" and key is None:
                    key = value.decode("latin-1")
            grant = await authenticate(self.window.verifier, authorization, domain.SUBMITTER_ROLES)
            if key is not None:
                try:
                    _KEY.validate_python(key)
                except ValidationError as exc:
                    raise RequestValidationError([{**e, "loc": ("header", "Idempotency-Key")}
                                                  for e in exc.errors()]) from None
            body = await _read_body(receive)
            if body is None:
                return  # the client went away: nobody to answer
            payload, replayed = await self.window.accept(scope["app"].state.writer, grant, key, body)
        except Exception as exc:
            problem = problem_of(exc)
            if problem is None:
                log.exception("unhandled error", extra={"path": scope["path"]})
                problem = Problem(500, "Internal error", "the error was logged")
            await problem.response(scope["path"])(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
        if replayed:
            headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def serve_submissions_fast(app: FastAPI, window: CaseWindow, settings: Settings, max_body: int) -> None:
    """Put `SubmitFastPath` in front of the app's middleware stack when the app builds it (as the OTel
    instrumentation puts its middleware in)."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: SubmitFastPath(build(), window, settings, max_body)


async def _read_body(receive) -> bytes | None:
    """The request's body (its size is already bounded by BodyLimit), or None if the client left."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) > 1 else chunks[0]


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
    """Intake's HTTP routes; on the router, `extra_schemas` holds the body's sub-schemas for OpenAPI and
    `window` the submission window the fast path shares with the route.
    A grid worker's report is checked against the grid directory (`grids`, default the shared one)."""
    router = APIRouter(prefix="/v1")
    grids = grids or load_grids()
    window = router.window = CaseWindow(settings, divisions, grids)
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
    ) -> Response:
        payload, replayed = await window.accept(request.app.state.writer, grant, idempotency_key,
                                                await request.body())
        return Response(payload, status_code=202, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"} if replayed else None)

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
