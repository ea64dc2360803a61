"""Intake as the one window for every channel: roles, repeats, concurrency, status, size limits."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import auth, unique

pytestmark = pytest.mark.e2e

CHANNEL_ROLES = {
    "window": "clerk-token-0001",
    "hotline": "hotline-token-0001",
    "grid": "grid-token-0001",
    "citizen_app": "citizen-token-0001",
    "online_petition": "citizen-token-0001",
    "police_referral": "department-token-0001",
    "court_referral": "department-token-0001",
}


def _auth(name: str) -> dict:
    return auth(name)


def _body(channel: str = "window", text: str | None = None, division: str = "339901001001", **over) -> dict:
    return {"channel": channel, "description": text or unique("小区停车位被长期占用，协商未果"),
            "location": {"division_code": division}, **over}


@pytest.mark.parametrize("channel", list(CHANNEL_ROLES))
def test_each_channel_is_accepted_from_its_role(stack, channel):
    r = stack.submit(_body(channel), headers=_auth(CHANNEL_ROLES[channel]))
    assert r.status_code == 202, r.text
    rows = stack.sql("SELECT channel FROM intake.cases WHERE case_id = $1", uuid.UUID(r.json()["case_id"]))
    assert rows[0]["channel"] == channel


def test_a_role_cannot_use_another_roles_channel(stack):
    r = stack.submit(_body("police_referral"), headers=_auth("citizen-token-0001"))
    assert r.status_code == 403 and r.json()["title"] == "Channel not allowed"
    r = stack.submit(_body("grid", division="339901002001"), headers=_auth("grid-token-0001"))
    assert r.status_code == 403 and r.json()["title"] == "Outside jurisdiction"


def test_concurrent_retries_with_one_key_make_one_case(stack):
    key, body = f"retry-{uuid.uuid4()}", _body()
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: stack.submit(body, headers={"Idempotency-Key": key}), range(10)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["case_id"] for r in responses}) == 1
    assert stack.sql("SELECT count(*) AS n FROM intake.cases WHERE idempotency_key = $1", key)[0]["n"] == 1


def test_repeat_report_is_linked_not_dispatched_twice(stack):
    text = unique("有人打架斗殴，就在菜市场门口")
    first = stack.submit(_body("hotline", text), headers=_auth("hotline-token-0001")).json()
    # the same matter, reported again by a grid worker with slightly different words
    again = stack.submit(_body("grid", text + "，请尽快处理"), headers=_auth("grid-token-0001"))
    assert again.status_code == 202
    body = again.json()
    assert body["duplicate"] is True
    assert (body["case_id"], body["case_number"]) == (first["case_id"], first["case_number"])
    assert body["submission_id"] != first["case_id"]
    events = stack.close_case(first["case_id"])
    types = [e["type"] for e in events]
    assert types.count("org.onewindow.case.duplicate_reported.v1") == 1
    assert types.count("org.onewindow.case.dispatched.v1") == 1
    dispatches = {r.value for r in stack.read_topic("dispatch.police") if r.key == first["case_id"].encode()}
    assert len(dispatches) == 1


def test_submitter_sees_the_status_move_and_citizens_see_only_their_own(stack):
    r = stack.submit(_body("citizen_app", unique("楼道里有人持刀威胁邻居")), headers=_auth("citizen-token-0001"))
    case_id = r.json()["case_id"]
    stack.close_case(case_id)
    url = f"{stack.url('intake')}/v1/cases/{case_id}"
    status = None
    for _ in range(50):
        status = httpx.get(url, headers=_auth("citizen-token-0001")).json()["status"]
        if status == "closed":
            break
        import time

        time.sleep(0.2)
    assert status == "closed"
    assert httpx.get(url, headers=_auth("citizen-token-0002")).status_code == 404


def test_oversize_bodies_are_refused_early(stack):
    url = f"{stack.url('intake')}/v1/cases"
    big = b'{"description": "' + b"x" * 300_000 + b'"}'
    r = httpx.post(url, content=big, headers={**_auth("clerk-token-0001"), "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

    def chunks():  # no Content-Length: streamed
        for _ in range(40):
            yield b"x" * 10_000

    r = httpx.post(url, content=chunks(), headers={**_auth("clerk-token-0001"), "content-type": "application/json"})
    assert r.status_code == 413


def test_every_class_of_bad_input_is_a_problem_listing_fields(stack):
    cases = [
        ({"channel": "window", "description": "x", "location": {"division_code": "110101001001"}},
         {"location.division_code"}),
        ({"channel": "window", "description": "x", "location": {"division_code": "339901001001"},
          "parties": [{"id_number": "110105194912310021"}], "occurred_at": "2999-01-01T00:00:00+08:00",
          "risk_flags": ["aliens"], "location_extra": 1},
         {"parties.0.id_number", "occurred_at", "risk_flags.0", "location_extra"}),
        ({"channel": "window", "description": "x" * 5001, "location": {"division_code": "339901001001"},
          "attachments": [{"name": "a", "media_type": "image/png", "size": 1, "sha256": "00"}]},
         {"description", "attachments.0.sha256"}),
        ([], {""}),
    ]
    for body, expected in cases:
        r = stack.submit(body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        fields = {e["field"] for e in r.json()["errors"]}
        assert expected <= fields, (expected, fields)
