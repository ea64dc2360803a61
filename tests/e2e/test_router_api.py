"""The router's operator API over HTTP: queues, manual dispatch, explanation, callback, auth."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import OPERATOR, auth, unique

pytestmark = pytest.mark.e2e


def _wait_in_queue(stack, name: str, case_id: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{stack.url('router')}/v1/queues/{name}", headers=OPERATOR)
        assert r.status_code == 200
        found = [c for c in r.json()["cases"] if c["case_id"] == case_id]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"{case_id} never reached the {name} queue")


def test_operator_dispatches_from_the_manual_queue_and_the_case_flows(stack):
    r = stack.submit({"channel": "hotline", "description": unique("小区门口的路灯坏了一个多星期了，晚上走路看不见"),
                      "location": {"division_code": "339902002003"}})
    case_id = r.json()["case_id"]
    _wait_in_queue(stack, "manual", case_id)
    url = f"{stack.url('router')}/v1/cases/{case_id}/dispatch"
    bad = httpx.post(url, headers=OPERATOR, json={"category": "no.such"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    ok = httpx.post(url, headers=OPERATOR, json={"category": "petition.officials.inaction"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "dispatched" and ok.json()["dispatches"][-1]["unit_id"] == "petition-339902"
    events = stack.close_case(case_id)
    types = [e["type"] for e in events]
    assert types[:4] == ["org.onewindow.case.received.v1", "org.onewindow.case.manual_triage_required.v1",
                         "org.onewindow.case.triage_corrected.v1", "org.onewindow.case.routed.v1"]
    assert "outside the catalogue" in events[1]["data"]["reason"] and len(events[1]["data"]["candidates"]) == 3
    corrected = events[2]["data"]  # the operator's choice is a labelled example, in the case's trace
    assert (corrected["correction"], corrected["corrected_category"]) == ("manual_dispatch",
                                                                           "petition.officials.inaction")
    assert events[3]["data"]["reason"] == "manual"
    assert len({e["trace_id"] for e in events}) == 1, "operator actions continue the case's trace"
    # the case is closed: its dispatch's clocks cannot be paused (refused as problem details)
    dispatches = f"{stack.url('router')}/v1/dispatches"
    stopped = httpx.post(f"{dispatches}/{ok.json()['dispatches'][-1]['dispatch_id']}/pause", headers=OPERATOR,
                         json={"reason": "当事人住院"})
    assert (stopped.status_code, stopped.json()["title"]) == (409, "Not allowed now")
    assert "while the case is closed" in stopped.json()["detail"]
    unknown = httpx.post(f"{dispatches}/{case_id}/pause", headers=OPERATOR, json={"reason": "当事人住院"})
    assert (unknown.status_code, unknown.json()["title"]) == (404, "No such dispatch")
    assert unknown.headers["content-type"] == "application/problem+json"


def test_callback_unsatisfied_reopens_for_rework(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在网吧门口打架"),
                      "location": {"division_code": "339901002002"}})
    case_id = r.json()["case_id"]
    stack.wait_timeline(case_id, "org.onewindow.dispatch.resolved.v1")
    _wait_in_queue(stack, "callback", case_id)
    again = stack.callback(case_id, satisfied=False, note="问题没有解决")
    assert again.status_code == 200 and again.json()["reopened"] == 1
    assert stack.callback(case_id).status_code == 409  # no callback due until the rework is resolved
    events = stack.close_case(case_id)
    types = [e["type"] for e in events]
    assert types.count("org.onewindow.case.reopened.v1") == 1
    assert types.count("org.onewindow.case.dispatched.v1") == 2
    assert [e["data"]["reason"] for e in events if e["type"].endswith("routed.v1")] == ["initial", "rework"]


def test_router_api_authenticates_and_authorises(stack):
    url = f"{stack.url('router')}/v1/queues/manual"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=auth("clerk-token-0001")).status_code == 403
    assert httpx.get(f"{stack.url('router')}/v1/queues/everything", headers=OPERATOR).status_code == 422
