"""The intake HTTP API: authentication, authorisation, validation as problem details, idempotency."""

from __future__ import annotations

from tests.conftest import CLERK, auth, unique

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

def good(**over) -> dict:
    """A valid submission with a description of its own (so it is not linked as a repeat)."""
    return {"channel": "window", "description": unique("楼上噪音扰民，邻里纠纷"),
            "location": {"division_code": "339902001001"}, **over}


def test_unauthenticated_and_unknown_tokens_get_401_problem(stack):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = httpx.post(f"{stack.url('intake')}/v1/cases", json=good(), headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401


def test_wrong_role_and_outside_jurisdiction_get_403(stack):
    r = stack.submit(good(), headers=auth("auditor-token-0001"))
    assert r.status_code == 403
    outside = good(location={"division_code": "339901001001"})
    r = stack.submit(outside, headers=auth("clerk-token-xishan"))
    assert r.status_code == 403 and r.json()["title"] == "Outside jurisdiction"


def test_invalid_body_lists_every_invalid_field(stack):
    bad = {"channel": "fax", "description": "", "location": {"division_code": "12ab"},
           "reporter": {"phone": "12345"}, "surprise": 1}
    r = stack.submit(bad)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"channel", "description", "location.division_code", "reporter.phone", "surprise"} <= fields


def test_not_json_is_a_problem_not_a_crash(stack):
    r = httpx.post(f"{stack.url('intake')}/v1/cases", content=b"\xff\xfe{", headers={
        **CLERK, "content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_idempotency_key_returns_the_same_case(stack):
    key = f"test-{uuid.uuid4()}"
    body = good()
    first = stack.submit(body, headers={"Idempotency-Key": key})
    again = stack.submit(body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = stack.submit(good(), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    rows = stack.sql("SELECT count(*) AS n FROM intake.cases WHERE idempotency_key = $1", key)
    assert rows[0]["n"] == 1


def test_case_numbers_are_unique_under_concurrency(stack):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: stack.submit(good()), range(40)))
    assert all(r.status_code == 202 for r in responses)
    numbers = [r.json()["case_number"] for r in responses]
    assert len(set(numbers)) == 40


def test_submitter_reads_the_case_with_personal_data_masked(stack):
    body = good(reporter={"name": "李四", "phone": "13700001111"})
    case_id = stack.submit(body).json()["case_id"]
    r = httpx.get(f"{stack.url('intake')}/v1/cases/{case_id}", headers=auth("clerk-token-0001"))
    assert r.status_code == 200
    assert r.json()["submission"]["reporter"] == {"name": "李*", "phone": "137****1111", "id_number": None}
    logs = "".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    assert "13700001111" not in logs and "李四" not in logs
