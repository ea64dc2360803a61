"""POST /v1/cases answer by answer, in process on a real PostgreSQL (no broker: intake's window works
without Kafka): every refusal is the RFC 9457 problem it always was — authentication before the
Idempotency-Key header, the header before the body, the body's errors field by field — and a good
submission is accepted and stored as it was sent."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import asyncpg
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from services.intake import domain
from services.intake.api import SubmitFastPath
from services.intake.entry import create_app
from shared import devstack
from shared.cloudevents import derive_id
from shared.settings import Settings
from tests.conftest import CLERK, ISSUER, auth, unique

DIVISION = "339902001001"
VALIDATION = "https://onewindow.example/problems/validation"
NO_TOKEN = {"type": "about:blank", "title": "Authentication required", "status": 401,
            "detail": "send Authorization: Bearer <token>", "instance": "/v1/cases"}
MALFORMED = {"type": "about:blank", "title": "Malformed JSON", "status": 400,
             "detail": "the body is not a JSON document", "instance": "/v1/cases"}


def _body(**over) -> dict:
    return {"channel": "window", "description": unique("楼上噪音扰民，邻里纠纷"), "location": {"division_code": DIVISION},
            **over}


def _invalid(*errors: tuple[str | None, str, str, str]) -> dict:
    """The validation problem listing (pointer, location, field, detail) for each error."""
    return {"type": VALIDATION, "title": "Invalid request", "status": 422, "detail": f"{len(errors)} invalid field(s)",
            "instance": "/v1/cases",
            "errors": [{"pointer": p, "location": loc, "field": f, "detail": d} for p, loc, f, d in errors]}


def _forbidden(title: str, detail: str) -> dict:
    return {"type": "about:blank", "title": title, "status": 403, "detail": detail, "instance": "/v1/cases"}


def _key_error(detail: str) -> dict:
    return _invalid((None, "header", "Idempotency-Key", detail))


EXPIRED = ISSUER.mint("clerk-9", "clerk", ["*"], ttl_seconds=60, now=time.time() - 3600)
NO_GRID = ISSUER.mint("grid-worker-without-a-grid", "grid", ["*"])
BAD_FIELDS = {"channel": "fax", "description": "", "location": {"division_code": "12ab"},
              "reporter": {"phone": "12345"}, "surprise": 1}

# name: (headers, body (dict: sent as JSON; bytes: as they are), status, problem)
REFUSALS = {
    "no token": ({}, _body(), 401, NO_TOKEN),
    "another scheme": ({"Authorization": "Basic abc"}, _body(), 401, NO_TOKEN),
    "a scheme without a token": ({"Authorization": "Bearer "}, _body(), 401, NO_TOKEN),
    "not a token": ({"Authorization": "Bearer nope"}, _body(), 401,
                    {"type": "about:blank", "title": "Invalid token", "status": 401, "detail": "Not enough segments",
                     "instance": "/v1/cases"}),
    "an expired token": ({"Authorization": f"Bearer {EXPIRED}"}, _body(), 401,
                         {"type": "about:blank", "title": "Invalid token", "status": 401,
                          "detail": "Signature has expired", "instance": "/v1/cases"}),
    "a role that may not submit": (auth("auditor-token-0001"), _body(), 403,
                                   _forbidden("Forbidden", "role 'auditor' may not do this")),
    "no token and a broken body": ({}, b"{", 401, NO_TOKEN),
    "a short key": ({**CLERK, "Idempotency-Key": "short"}, _body(), 422,
                    _key_error("String should have at least 8 characters")),
    "an empty key": ({**CLERK, "Idempotency-Key": ""}, _body(), 422,
                     _key_error("String should have at least 8 characters")),
    "a key with spaces": ({**CLERK, "Idempotency-Key": "has space here"}, _body(), 422,
                          _key_error("String should match pattern '^[\\x21-\\x7e]+$'")),
    "a short key and a broken body": ({**CLERK, "Idempotency-Key": "short"}, b"{", 422,
                                      _key_error("String should have at least 8 characters")),
    "broken JSON": (CLERK, b"{", 400, MALFORMED),
    "no body": (CLERK, b"", 400, MALFORMED),
    "not UTF-8": (CLERK, b"\xff\xfe{", 400, MALFORMED),
    "not an object": (CLERK, b"[]", 422, _invalid(
        ("/", "body", "", "Input should be a valid dictionary or instance of CaseSubmission"))),
    "NaN": (CLERK, json.dumps(_body(people_involved=float("nan"))).encode(), 422, _invalid(
        ("/", "body", "", "Value error, (body).people_involved: NUL characters and NaN or infinite numbers are not"
                          " accepted"))),
    "a NUL character": (CLERK, _body(description="a\x00b"), 422, _invalid(
        ("/", "body", "", "Value error, (body).description: NUL characters and NaN or infinite numbers are not"
                          " accepted"))),
    "every invalid field": (CLERK, BAD_FIELDS, 422, _invalid(
        ("/channel", "body", "channel", "Input should be 'window', 'hotline', 'grid', 'citizen_app', "
                                        "'online_petition', 'police_referral' or 'court_referral'"),
        ("/description", "body", "description", "String should have at least 1 character"),
        ("/location/division_code", "body", "location.division_code",
         "String should match pattern '^\\d{6}(\\d{3}(\\d{3})?)?$'"),
        ("/reporter/phone", "body", "reporter.phone",
         "String should match pattern '^(1[3-9]\\d{9}|0\\d{2,3}-?\\d{7,8})$'"),
        ("/surprise", "body", "surprise", "Extra inputs are not permitted"))),
    "a list for the location": (CLERK, {"channel": "window", "description": "x", "location": []}, 422, _invalid(
        ("/location", "body", "location", "Input should be a valid dictionary or instance of SubmittedLocation"))),
    "an unknown division": (CLERK, _body(location={"division_code": "339999999999"}), 422, _invalid(
        ("/location/division_code", "body", "location.division_code",
         "Value error, unknown administrative division code"))),
    "a date in the future": (CLERK, _body(occurred_at="2999-01-01T00:00:00Z"), 422, _invalid(
        ("/occurred_at", "body", "occurred_at", "Value error, occurred_at is in the future"))),
    "a channel the role may not use": (auth("citizen-token-0001"), _body(channel="hotline"), 403,
                                       _forbidden("Channel not allowed", "role 'citizen' may not submit via hotline")),
    "a disposition the role may not give": (
        auth("citizen-token-0001"),
        _body(channel="citizen_app", disposition={"act": "close", "code": "answered", "note": "已答复"}), 403,
        _forbidden("Disposition not allowed", "role 'citizen' may not finish or refuse a case at the window")),
    "outside the jurisdiction": (auth("clerk-token-xishan"), _body(location={"division_code": "339901001001"}), 403,
                                 _forbidden("Outside jurisdiction", "this token may not submit cases for that division")),
    "a grid worker without a grid": ({"Authorization": f"Bearer {NO_GRID}"}, _body(channel="grid"), 403,
                                     _forbidden("Outside your grid", "this grid worker serves no grid in the grid"
                                                                     " directory")),
}


@pytest.fixture(autouse=True)
def _keep_logging():
    """The service's start-up installs its JSON log handler on the root logger: put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(scope="module")
def database(new_database) -> str:
    return new_database()


@pytest.fixture(scope="module", params=[True, False], ids=["fast path", "FastAPI route"])
async def intake(database, request):
    """Intake in process as its own role, on a database of its own; a broker that is not there. Both
    ways of answering POST /v1/cases: the fast path (as it runs) and the FastAPI route alone."""
    settings = Settings(_env_file=None, database_url=database, database_login_per_service=True,
                        kafka_bootstrap_servers=f"127.0.0.1:{devstack.free_port()}",
                        auth_issuer=ISSUER.issuer, auth_jwks_file=ISSUER.jwks_file, outbox_poll_seconds=60)
    app = create_app(settings, fast_path=request.param)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake", timeout=20) as client:
        yield client, database, app


async def _post(client: httpx.AsyncClient, headers, body) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.post("/v1/cases", content=body, headers={"content-type": "application/json", **headers})
    return await client.post("/v1/cases", json=body, headers=headers)


@pytest.mark.parametrize("name", sorted(REFUSALS))
async def test_every_refusal_is_the_problem_it_was(intake, name):
    client, _, _ = intake
    headers, body, status, problem = REFUSALS[name]
    r = await _post(client, headers, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == problem
    assert (r.headers.get("www-authenticate") == "Bearer") is (status == 401)


async def test_the_first_of_repeated_headers_counts(intake):
    client, _, _ = intake
    key = f"key-{uuid.uuid4()}"
    r = await client.post("/v1/cases", json=_body(), headers=[*CLERK.items(), ("Idempotency-Key", "short"),
                                                               ("Idempotency-Key", key)])
    assert r.status_code == 422 and r.json() == _key_error("String should have at least 8 characters")
    r = await client.post("/v1/cases", json=_body(), headers=[*CLERK.items(), ("Idempotency-Key", key),
                                                               ("Idempotency-Key", "short")])
    assert r.status_code == 202, r.text
    r = await client.post("/v1/cases", json=_body(), headers=[("Authorization", "Bearer nope"), *CLERK.items()])
    assert r.status_code == 401 and r.json()["detail"] == "Not enough segments"


async def test_a_submission_is_accepted_once_and_stored_as_sent(intake):
    client, database, _ = intake
    key = f"key-{uuid.uuid4()}"
    body = _body(title="  楼上噪音  ", reporter={"name": "王五", "phone": "13700002222"},
                 risk_flags=["minors", "elderly", "minors"], occurred_at="2026-11-30T08:00:00+08:00",
                 location={"division_code": DIVISION, "coordinates": {"lat": 30.1, "lng": 120.2}})
    # the scheme is case-insensitive; the content type is not looked at
    headers = {"Authorization": CLERK["Authorization"].replace("Bearer", "bearer"), "Idempotency-Key": key,
               "content-type": "text/plain"}
    first = await client.post("/v1/cases", content=json.dumps(body).encode(), headers=headers)
    assert first.status_code == 202, first.text
    assert first.headers["content-type"] == "application/json" and "idempotent-replayed" not in first.headers
    answer = first.json()
    assert set(answer) == {"case_id", "case_number", "submission_id", "duplicate"}
    assert answer["duplicate"] is False and answer["case_id"] == answer["submission_id"]
    again = await client.post("/v1/cases", json=body, headers={**CLERK, "Idempotency-Key": key})
    assert again.status_code == 202 and again.json() == answer
    assert again.headers["idempotent-replayed"] == "true"
    reused = await client.post("/v1/cases", json=_body(), headers={**CLERK, "Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json()["type"] == "https://onewindow.example/problems/idempotency-key-reused"

    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT case_id, case_number, title, reporter_phone, submission, submitted_by"
                                " FROM intake.cases WHERE idempotency_key = $1", key)
    finally:
        await conn.close()
    assert len(rows) == 1
    row = rows[0]
    assert (str(row["case_id"]), row["case_number"]) == (answer["case_id"], answer["case_number"])
    assert (row["title"], row["reporter_phone"], row["submitted_by"]) == ("楼上噪音", "13700002222", "clerk-1")
    stored = json.loads(row["submission"])
    assert stored["risk_flags"] == ["elderly", "minors"] and stored["occurred_at"] == "2026-11-30T08:00:00+08:00"
    assert stored["location"]["coordinates"] == {"lat": 30.1, "lng": 120.2}


async def test_a_body_in_another_unicode_encoding_is_read_as_before(intake):
    client, _, _ = intake
    for encoded in (json.dumps(_body()).encode("utf-16"), b"\xef\xbb\xbf" + json.dumps(_body()).encode()):
        r = await client.post("/v1/cases", content=encoded, headers=CLERK)
        assert r.status_code == 202, r.text


async def test_a_client_that_leaves_before_its_body_is_sent_is_no_error(intake, caplog):
    client, database, app = intake
    messages = iter([{"type": "http.request", "body": b'{"channel": ', "more_body": True}])
    sent = []

    async def receive():  # then the client is gone: a server says so from then on
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/cases", "raw_path": b"/v1/cases", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"intake"), (b"authorization", CLERK["Authorization"].encode())],
             "client": ("127.0.0.1", 1), "server": ("intake", 80), "state": {}}
    with caplog.at_level(logging.ERROR):
        await app(scope, receive, send)
    assert "unhandled error" not in [r.getMessage() for r in caplog.records]
    if any(isinstance(m, SubmitFastPath) for m in _middleware(app)):
        assert sent == []  # nobody to answer
    else:
        assert sent[0]["status"] == 499  # the FastAPI route's way (shared.http): an answer nobody reads


def _middleware(app):
    """The ASGI apps of the built middleware stack, outermost first."""
    layer = app.middleware_stack
    while layer is not None:
        yield layer
        layer = getattr(layer, "app", None)


class _Spans(SpanProcessor):
    """Collects the spans that end while it listens (the service's tracer provider is process-wide)."""

    def __init__(self) -> None:
        self.ended, self.listening = [], True

    def on_end(self, span) -> None:
        if self.listening:
            self.ended.append(span)


async def test_the_case_trace_starts_in_the_request_span_which_continues_the_caller(intake):
    client, database, _ = intake
    provider = trace.get_tracer_provider()
    spans = _Spans()
    provider.add_span_processor(spans)
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    try:
        r = await client.post("/v1/cases", json=_body(), headers={**CLERK, "traceparent": f"00-{caller_trace}-{caller_span}-01"})
    finally:
        spans.listening = False
    assert r.status_code == 202, r.text
    (server,) = [s for s in spans.ended if s.kind is trace.SpanKind.SERVER]
    assert server.name == "POST /v1/cases"
    assert format(server.context.trace_id, "032x") == caller_trace and format(server.parent.span_id, "016x") == caller_span
    assert server.attributes.get("http.response.status_code", server.attributes.get("http.status_code")) == 202
    conn = await asyncpg.connect(database)
    try:
        headers = await conn.fetchval("SELECT headers FROM intake.outbox WHERE event_id = $1",
                                      derive_id(domain.SOURCE, uuid.UUID(r.json()["case_id"]), "received"))
    finally:
        await conn.close()
    traceparent = {k: base64.b64decode(v).decode() for k, v in json.loads(headers)}["traceparent"]
    assert traceparent.split("-")[1:3] == [caller_trace, format(server.context.span_id, "016x")]
