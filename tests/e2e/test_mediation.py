"""Mediation as a real service: assignment, the lifecycle over the mediator API, judicial
confirmation by the (simulated) court, failure handed on to litigation, court referrals, figures,
and a kill/restart in the middle of a lifecycle."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka import Producer

from shared.cloudevents import EnvelopeError, decode
from tests.conftest import OPERATOR, auth, unique
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e


def _mediation_of(stack, case_id: str) -> dict:
    events = stack.wait_timeline(case_id, "org.onewindow.mediation.transitioned.v1")
    return next(e["data"] for e in events if e["type"] == "org.onewindow.mediation.transitioned.v1")


def _act(stack, m: dict, action: str, **body) -> httpx.Response:
    return httpx.post(f"{stack.url('mediation')}/v1/mediations/{m['mediation_id']}/actions",
                      headers=auth(f"mediator-token-{m['mediator_id']}"),
                      json={"action": action, **body}, timeout=10)


def _dispute(stack, text: str) -> str:
    # at the window: a grid worker's minor neighbour dispute would go to the grid first (小事不出格)
    r = stack.submit({"channel": "window", "description": unique(text), "location": {"division_code": "339901001001"}})
    return r.json()["case_id"]


def _transitions(stack, case_id: str) -> list[str]:
    return [e["data"]["to_status"] for e in stack.timeline(case_id)
            if e["type"] == "org.onewindow.mediation.transitioned.v1"]




def test_agreement_is_confirmed_by_the_court_and_the_case_closes(stack):
    case_id = _dispute(stack, "邻居家楼上漏水，邻里纠纷希望调解")
    m = _mediation_of(stack, case_id)
    assert m["committee_id"] == "mediation-339901001001" and m["to_status"] == "assigned"
    mine = httpx.get(f"{stack.url('mediation')}/v1/mediations",
                     headers=auth(f"mediator-token-{m['mediator_id']}")).json()
    assert m["mediation_id"] in {x["mediation_id"] for x in mine["mediations"]}
    assert _act(stack, m, "agree", agreement_text="x").status_code == 409  # no session held yet
    for action in ("schedule", "hold", "schedule", "hold"):
        assert _act(stack, m, action, note=action).status_code == 200
    r = _act(stack, m, "agree", agreement_text="楼上住户承担维修费用并赔偿1500元", amount=1500)
    assert r.status_code == 200 and r.json()["agreement"]["amount"] == 1500
    assert _act(stack, m, "confirm").status_code == 200
    eventually(lambda: "confirmed" in _transitions(stack, case_id))
    events = stack.close_case(case_id)
    assert _transitions(stack, case_id) == ["assigned", "session_scheduled", "session_held", "session_scheduled",
                                            "session_held", "agreement_reached", "confirmation_requested",
                                            "confirmed"]
    resolved = next(e for e in events if e["type"] == "org.onewindow.dispatch.resolved.v1")
    assert "调解成功" in resolved["data"]["summary"]


def test_failure_is_handed_to_litigation_through_the_router(stack):
    case_id = _dispute(stack, "邻里之间因占道堆物发生纠纷")
    m = _mediation_of(stack, case_id)
    for action in ("schedule", "hold"):
        _act(stack, m, action)
    assert _act(stack, m, "fail", note="双方分歧较大").status_code == 422  # the party's choice is required
    assert _act(stack, m, "fail", note="双方分歧较大", next_step="litigation").status_code == 200
    events = stack.close_case(case_id)  # the simulated court accepts and resolves the transferred case
    routed = [e["data"] for e in events if e["type"] == "org.onewindow.case.routed.v1"]
    assert [(r["reason"], r["unit_kind"]) for r in routed] == [("initial", "mediation"), ("transfer", "court")]
    handoffs = [decode(r.key, r.value, r.headers).data for r in stack.read_topic("court.mediation")
                if r.key == case_id.encode()]
    assert [h["kind"] for h in handoffs] == ["litigation_handoff"]


def test_court_referral_is_mediated_and_the_outcome_goes_back_to_the_court(stack):
    case_id, referral = str(uuid.uuid4()), f"ref-{uuid.uuid4().hex[:10]}"
    data = {"case_id": case_id, "referral_id": referral, "court_unit_id": "court-339902",
            "court_case_number": "(2026)浙9902民诉前1234号", "division_code": "339902003001",
            "summary": "物业费纠纷，诉前委派调解", "specialty": "property"}
    p = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    headers = [("ce_specversion", "1.0"), ("ce_id", referral), ("ce_source", "/departments/court/339902"),
               ("ce_type", "org.onewindow.court.referral.v1"), ("ce_time", datetime.now(UTC).isoformat()),
               ("ce_subject", case_id), ("content-type", "application/json")]
    p.produce("court.referrals", key=case_id, value=json.dumps(data, ensure_ascii=False), headers=headers)
    assert p.flush(10) == 0
    m = _mediation_of(stack, case_id)
    assert m["committee_id"] == "mediation-339902-property" and m["origin"] == "court_referral"
    for action in ("schedule", "hold"):
        _act(stack, m, action)
    _act(stack, m, "agree", agreement_text="业主补缴物业费3000元，物业公司整改", amount=3000)

    def outcome():
        for r in stack.read_topic("court.mediation"):
            try:
                ev = decode(r.key, r.value, r.headers)
            except EnvelopeError:
                continue
            if ev.data.get("referral_id") == referral and ev.data.get("kind") == "outcome":
                return ev.data
        return None

    result = eventually(outcome)
    assert result["outcome"] == "agreement_reached" and result["agreement"]["amount"] == 3000


def test_kill_and_restart_in_the_middle_of_a_lifecycle(stack):
    case_id = _dispute(stack, "邻里因为噪音问题多次争吵")
    m = _mediation_of(stack, case_id)
    _act(stack, m, "schedule")
    stack.procs["mediation"].kill()
    stack.procs["mediation"].start()
    stack.procs["mediation"].wait_ready(60)
    assert _act(stack, m, "hold").status_code == 200
    assert _act(stack, m, "schedule").status_code == 200  # state survived: held → scheduled again
    eventually(lambda: _transitions(stack, case_id) == ["assigned", "session_scheduled", "session_held",
                                                   "session_scheduled"])
    time.sleep(1.0)
    assert _transitions(stack, case_id) == ["assigned", "session_scheduled", "session_held", "session_scheduled"]
    accepted = [e for e in stack.timeline(case_id) if e["type"] == "org.onewindow.dispatch.accepted.v1"]
    assert len(accepted) == 1, "nothing duplicated"


def test_figures_for_the_command_centre(stack):
    r = httpx.get(f"{stack.url('mediation')}/v1/figures", headers=OPERATOR)
    assert r.status_code == 200
    figures = r.json()
    assert any(c["agreed"] >= 1 and c["success_rate"] is not None for c in figures["by_committee"])
    assert set(figures) == {"by_committee", "by_level", "by_specialty", "open_by_mediator"}
    assert httpx.get(f"{stack.url('mediation')}/v1/figures",
                     headers=auth("clerk-token-0001")).status_code == 403
