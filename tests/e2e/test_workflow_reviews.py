"""The rest of the workflow on the real services: 退单审核 and 转办审核 (a department's return or transfer
held for the command centre), 办结审核, 拆单, 并单 seen on the surviving case's timeline, and the
citizen's 评价 and 申请重办 through intake — with router, intake and audit telling the same status."""

from __future__ import annotations


import httpx
import pytest

from tests.conftest import OPERATOR, auth, unique
from tests.e2e.conftest import eventually
from tests.e2e.test_department_integration import _send
from tests.e2e.test_router_api import _wait_in_queue
from tests.e2e.test_workflow_acts import _manual_case, _post

pytestmark = pytest.mark.e2e
VANDALISM = "public_security.property_crime.vandalism"  # the sample catalogue reviews its returns
FOREIGN_DIVISION = "339902004002"  # no simulated department answers here: the tests are the unit
PHONE = "13800001234"


def _statuses(stack, case_id: str) -> dict[str, str]:
    router = httpx.get(f"{stack.url('router')}/v1/cases/{case_id}", headers=OPERATOR, timeout=10).json()
    audit = httpx.get(f"{stack.url('audit')}/v1/cases/{case_id}", headers=OPERATOR, timeout=10).json()
    intake = httpx.get(f"{stack.url('intake')}/v1/cases/{case_id}", headers=auth("clerk-token-0001"), timeout=10)
    return {"router": router.get("status"), "audit": audit.get("status"),
            "intake": intake.json().get("status") if intake.status_code == 200 else None}


def _agree(stack, case_id: str, *expected: str, timeout: float = 30.0) -> None:
    """Wait until router, audit and intake all tell the same one of `expected` (they project from
    different topics)."""
    seen = {}

    def agreed() -> bool:
        seen.update(_statuses(stack, case_id))
        return len(set(seen.values())) == 1 and seen["router"] in expected
    eventually(agreed, timeout, f"router, audit and intake to agree on {expected} (last seen {seen})")


def _lead(stack, case_id: str) -> dict:
    state = httpx.get(f"{stack.url('router')}/v1/cases/{case_id}", headers=OPERATOR, timeout=10).json()
    return next(d for d in reversed(state["dispatches"]) if d["role"] == "lead" and d["status"] != "ended")


def _feedback(stack, case_id: str, d: dict, kind: str, **data) -> None:
    _send(stack, f"feedback.{d['unit_kind']}", case_id, f"org.onewindow.dispatch.{kind}.v1",
          {"case_id": case_id, "dispatch_id": d["dispatch_id"], "unit_id": d["unit_id"], **data})


def _vandalism_case(stack) -> str:
    r = stack.submit({"channel": "hotline", "description": unique("停在楼下的车窗被人砸坏了"), "category": VANDALISM,
                      "location": {"division_code": FOREIGN_DIVISION}})
    assert r.status_code == 202, r.text
    case_id = r.json()["case_id"]
    stack.wait_timeline(case_id, "org.onewindow.case.dispatched.v1")
    return case_id


def test_a_return_waits_for_review_and_a_refusal_leaves_the_case_with_the_unit(stack):
    case_id = _vandalism_case(stack)
    d = _lead(stack, case_id)
    _feedback(stack, case_id, d, "accepted")
    _agree(stack, case_id, "accepted")
    _feedback(stack, case_id, d, "returned", reason="属民事纠纷，非本单位职责")
    _wait_in_queue(stack, "returns", case_id)
    _agree(stack, case_id, "return_review")
    refused = _post(stack, f"/cases/{case_id}/return-review", {"approved": False, "note": "涉嫌故意损毁，属公安管辖"})
    assert refused.status_code == 200 and refused.json()["dispatches"][-1]["unit_id"] == d["unit_id"], refused.text
    _agree(stack, case_id, "accepted")
    again = _post(stack, f"/cases/{case_id}/return-review", {"approved": True})
    assert again.status_code == 409  # nothing is held any more
    # the unit hears the decision on its dispatch topic; audit has it with the operator as author
    heard = [dict(r.headers).get("ce_type") for r in stack.read_topic(f"dispatch.{d['unit_kind']}")
             if r.key == case_id.encode()]
    assert b"org.onewindow.dispatch.return_reviewed.v1" in heard
    reviewed = stack.wait_timeline(case_id, "org.onewindow.dispatch.return_reviewed.v1")[-1]
    assert reviewed["actor"] == {"id": "operator-1", "role": "operator"}
    assert any(e["type"].endswith("dispatch.return_held.v1") for e in stack.timeline(case_id))


def test_an_approved_transfer_goes_to_the_named_kind_and_a_resolution_waits_for_review(stack):
    case_id = _vandalism_case(stack)
    first = _lead(stack, case_id)
    _feedback(stack, case_id, first, "transferred", reason="系邻里纠纷，转调解", target_kind="mediation")
    _wait_in_queue(stack, "returns", case_id)
    approved = _post(stack, f"/cases/{case_id}/return-review", {"approved": True, "note": "同意转调解"})
    assert approved.status_code == 200, approved.text
    lead = _lead(stack, case_id)
    assert lead["unit_kind"] == "mediation" and lead["dispatch_id"] != first["dispatch_id"]
    _agree(stack, case_id, "dispatched", "accepted")  # the mediation service signs for it at once


def test_resolution_review_then_callback(stack):
    case_id = _vandalism_case(stack)
    d = _lead(stack, case_id)
    _feedback(stack, case_id, d, "resolved", summary="已立案，损失已评估")
    _wait_in_queue(stack, "review", case_id)
    _agree(stack, case_id, "resolved")
    assert _post(stack, f"/cases/{case_id}/callback", {"outcome": "satisfied"}).status_code == 409  # review first
    assert _post(stack, f"/cases/{case_id}/review", {"approved": True, "note": "材料齐全"}).status_code == 200
    assert _post(stack, f"/cases/{case_id}/callback", {"outcome": "satisfied"}).status_code == 200
    _agree(stack, case_id, "closed")


def test_split_a_report_into_cases_for_two_units(stack):
    case_id = _manual_case(stack)
    r = _post(stack, f"/cases/{case_id}/split", {"note": "一单多事", "parts": [
        {"summary": "反映村干部不作为", "category": "petition.officials.inaction"},
        {"summary": "楼上装修噪音扰民", "category": "dispute.neighbourhood.noise"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    parts = body["cases"]
    assert body["status"] == "split" and body["split_into"] == [p["case_id"] for p in parts]
    assert [p["case_number"] for p in parts] == [f"{body['case_number']}-1", f"{body['case_number']}-2"]
    assert {p["dispatches"][-1]["unit_kind"] for p in parts} == {"petition", "mediation"}
    _agree(stack, case_id, "split")
    split = stack.wait_timeline(case_id, "org.onewindow.case.split.v1")[-1]
    assert split["actor"]["id"] == "operator-1" and len(split["data"]["parts"]) == 2
    for p in parts:  # each part is traced as a case of its own (its unit may already be at work on it)
        eventually(lambda: any(e["type"].endswith("case.dispatched.v1") for e in stack.timeline(p["case_id"])),
                   20, f"part {p['case_number']} in audit")
    one = _post(stack, f"/cases/{_manual_case(stack)}/split", {"parts": [{"summary": "x", "category": VANDALISM}]})
    assert one.status_code == 422


def test_a_merged_cases_report_shows_on_the_timeline_of_the_case_it_follows(stack):
    kept, merged = _manual_case(stack), _manual_case(stack)
    assert _post(stack, f"/cases/{merged}/merge", {"into_case_id": kept, "note": "同一路灯"}).status_code == 200
    _agree(stack, merged, "merged")
    eventually(lambda: {e["case_id"] for e in stack.timeline(kept) if e["type"].endswith("case.received.v1")}
               == {kept, merged}, 20, "both reports on the kept case's timeline")


def test_citizen_rates_and_asks_to_reopen_through_intake(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在网吧门口打架"), "reporter": {"phone": PHONE},
                      "location": {"division_code": "339901002002"}})
    case_id, number = r.json()["case_id"], r.json()["case_number"]
    stack.close_case(case_id)
    _agree(stack, case_id, "closed")
    citizen = auth("citizen-token-0001")
    base = f"{stack.url('intake')}/v1/cases/by-number/{number}"
    wrong = httpx.post(f"{base}/rating", headers=citizen, json={"verification": "13900000000", "rating": "unsatisfied"})
    assert wrong.status_code == 404 and wrong.headers["content-type"].startswith("application/problem+json")
    unknown = httpx.post(f"{stack.url('intake')}/v1/cases/by-number/339901-20990101-99999/rating", headers=citizen,
                         json={"verification": PHONE, "rating": "satisfied"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == wrong.json()["detail"]
    rated = httpx.post(f"{base}/rating", headers=citizen,
                       json={"verification": "138 0000 1234", "rating": "unsatisfied", "comment": "打架的人又来了"})
    assert rated.status_code == 202, rated.text
    assert httpx.post(f"{base}/rating", headers=citizen,
                      json={"verification": PHONE, "rating": "satisfied"}).status_code == 409  # once
    assert httpx.post(f"{base}/rating", headers=auth("operator-token-0001"),
                      json={"verification": PHONE, "rating": "satisfied"}).status_code == 403
    asked = httpx.post(f"{base}/reopen", headers=citizen, json={"verification": PHONE, "reason": "问题依旧"})
    assert asked.status_code == 202, asked.text
    events = eventually(lambda: (lambda ev: ev if any(e["type"].endswith("case.reopened.v1") for e in ev) else None)(
        stack.timeline(case_id)), 30, "the reopening in audit")
    types = [e["type"].removeprefix("org.onewindow.") for e in events]
    assert "case.rated.v1" in types and "case.reopen_requested.v1" in types and "case.reopened.v1" in types
    requested = next(e for e in events if e["type"].endswith("reopen_requested.v1"))
    assert requested["actor"] == {"id": "citizen-1", "role": "citizen"}
    assert types.index("case.reopened.v1") < len(types) - 2 and types[types.index("case.reopened.v1") + 1] == \
        "case.routed.v1"  # back with the unit for rework (the simulated unit may resolve it again at once)
    _agree(stack, case_id, "dispatched", "accepted", "in_progress", "resolved")


def test_a_clerk_finishes_a_consultation_at_the_window_and_a_citizen_may_not(stack):
    body = {"channel": "hotline", "description": unique("咨询办理居住证需要带哪些材料"),
            "location": {"division_code": "339901001001"},
            "disposition": {"act": "close", "code": "answered", "note": "已电话告知所需材料及办理地点"}}
    r = stack.submit(body)
    assert r.status_code == 202, r.text
    case_id = r.json()["case_id"]
    closed = stack.wait_timeline(case_id, "org.onewindow.case.closed_directly.v1")
    assert [e["type"].removeprefix("org.onewindow.") for e in closed] == ["case.received.v1",
                                                                          "case.closed_directly.v1"]
    assert closed[-1]["actor"] == {"id": "clerk-1", "role": "clerk"}  # the clerk acted, not the router
    _agree(stack, case_id, "closed")
    citizen = stack.submit({**body, "channel": "citizen_app"}, headers=auth("citizen-token-0001"))
    assert citizen.status_code == 403 and citizen.json()["title"] == "Disposition not allowed"
