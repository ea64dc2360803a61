"""The command centre's workflow acts over HTTP and a department's topic, each an event in audit's
trace with its author (real services, real broker and database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import OPERATOR, auth, unique
from tests.e2e.test_department_integration import _dispatch_of, _foreign_case, _send
from tests.e2e.test_router_api import _wait_in_queue

pytestmark = pytest.mark.e2e


def _post(stack, path: str, body: dict, headers: dict = OPERATOR) -> httpx.Response:
    return httpx.post(f"{stack.url('router')}/v1{path}", headers=headers, json=body, timeout=10)


def _intake_status(stack, case_id: str, expected: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = httpx.get(f"{stack.url('intake')}/v1/cases/{case_id}", headers=auth("clerk-token-0001")).json()[
            "status"]
        if status == expected:
            return status
        time.sleep(0.2)
    return status


def _manual_case(stack) -> str:
    r = stack.submit({"channel": "hotline", "description": unique("小区门口的路灯坏了一个多星期了，晚上走路看不见"),
                      "location": {"division_code": "339902002003"}})
    case_id = r.json()["case_id"]
    _wait_in_queue(stack, "manual", case_id)
    return case_id


def test_close_directly_and_refuse_from_the_manual_queue_each_with_its_author(stack):
    answered, refused = _manual_case(stack), _manual_case(stack)
    r = _post(stack, f"/cases/{answered}/close", {"code": "answered", "note": "已告知路灯报修电话并登记"})
    assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["acts"] == [], r.text
    again = _post(stack, f"/cases/{answered}/refuse", {"code": "other", "note": "x"})
    assert again.status_code == 409 and "while the case is closed" in again.json()["detail"]
    assert _post(stack, f"/cases/{refused}/refuse", {"code": "in_litigation", "note": "已进入诉讼程序"}).status_code == 200
    closed = stack.wait_timeline(answered, "org.onewindow.case.closed_directly.v1")[-1]
    assert closed["actor"] == {"id": "operator-1", "role": "operator"}
    assert stack.wait_timeline(refused, "org.onewindow.case.refused.v1")[-1]["data"]["code"] == "in_litigation"
    # status everyone agrees on: router, audit and intake
    summary = httpx.get(f"{stack.url('audit')}/v1/cases/{refused}", headers=OPERATOR).json()
    assert summary["status"] == "refused"
    assert _intake_status(stack, answered, "closed") == "closed"
    assert _intake_status(stack, refused, "refused") == "refused"
    # the machine's own acts name the service
    received = stack.timeline(answered)[0]
    assert received["actor"] == {"id": "clerk-1", "role": "clerk"}  # the clerk who took the call
    manual = next(e for e in stack.timeline(answered) if e["type"].endswith("manual_triage_required.v1"))
    assert manual["actor"] == {"id": "/onewindow/router", "role": "service"}


def test_urge_supervise_pause_and_an_extension_asked_on_the_departments_topic(stack):
    case_id = _foreign_case(stack, "夜里有人在烧烤摊打架")
    d = _dispatch_of(stack, case_id)
    dispatch = d["dispatch_id"]
    assert _post(stack, f"/dispatches/{dispatch}/urge", {"note": "请尽快到场处置"}).status_code == 200
    assert _post(stack, f"/dispatches/{dispatch}/supervise", {"colour": "yellow", "note": "限期签收"}).status_code == 200
    paused = _post(stack, f"/dispatches/{dispatch}/pause", {"reason": "当事人就医"})
    assert paused.status_code == 200 and all(c["paused"] for c in paused.json()["clocks"])
    assert _post(stack, f"/dispatches/{dispatch}/pause", {"reason": "again"}).status_code == 409
    resumed = _post(stack, f"/dispatches/{dispatch}/resume", {"reason": "已出院"})
    assert resumed.status_code == 200
    resolve_due = datetime.fromisoformat(next(c for c in resumed.json()["clocks"] if c["kind"] == "resolve")["due_at"])
    # no extension was asked: nothing to decide
    assert _post(stack, f"/dispatches/{dispatch}/extension", {"approved": True}).status_code == 409
    asked = resolve_due + timedelta(days=2)
    _send(stack, "feedback.police", case_id, "org.onewindow.dispatch.extension_requested.v1",
          {"case_id": case_id, "dispatch_id": dispatch, "unit_id": d["unit_id"],
           "requested_due_at": asked.isoformat(), "reason": "需等待伤情鉴定"})
    _wait_in_queue(stack, "extension", case_id)
    decided = _post(stack, f"/dispatches/{dispatch}/extension", {"approved": True, "note": "同意延期"})
    assert decided.status_code == 200, decided.text
    assert [datetime.fromisoformat(c["due_at"]) for c in decided.json()["clocks"]] == [asked]
    events = stack.wait_timeline(case_id, "org.onewindow.dispatch.extension_decided.v1")
    acts = {e["type"].removeprefix("org.onewindow."): e["actor"] for e in events}
    for act in ("dispatch.urged.v1", "supervision.notice.v1", "dispatch.clock_paused.v1",
                "dispatch.clock_resumed.v1", "dispatch.extension_decided.v1"):
        assert acts[act] == {"id": "operator-1", "role": "operator"}, act
    assert "dispatch.extension_requested.v1" in acts
    # the unit hears the decision on its dispatch topic
    heard = [dict(r.headers).get("ce_type") for r in stack.read_topic("dispatch.police") if r.key == case_id.encode()]
    assert {b"org.onewindow.dispatch.urged.v1", b"org.onewindow.dispatch.extension_decided.v1"} <= set(heard)
    assert datetime.now(UTC) < asked


def test_callback_not_reached_three_times_closes_as_unreachable(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在网吧门口打架"),
                      "location": {"division_code": "339901002002"}})
    case_id = r.json()["case_id"]
    deadline = time.monotonic() + 30
    while _post(stack, f"/cases/{case_id}/callback", {"outcome": "unreachable"}).status_code != 200:
        assert time.monotonic() < deadline, "the callback never came due"
        time.sleep(0.2)
    for _ in range(2):
        assert _post(stack, f"/cases/{case_id}/callback", {"outcome": "unreachable"}).status_code == 200
    events = stack.wait_timeline(case_id, "org.onewindow.case.closed.v1")
    callbacks = [e["data"] for e in events if e["type"].endswith("callback_recorded.v1")]
    assert [(c["outcome"], c["attempt"]) for c in callbacks] == [("unreachable", 1), ("unreachable", 2),
                                                                 ("unreachable", 3)]
    assert events[-1]["data"]["disposition"] == "unreachable"
