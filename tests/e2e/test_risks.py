"""The risk register as a real service on the broker and PostgreSQL: related cases received by
intake cluster into one risk scored by the weights; an operator's risk runs its lifecycle with
refused transitions answered 409; every change is an event with its actor in audit's trace."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.audit.domain import mask_text
from services.mediation import risks
from tests.conftest import OPERATOR, auth, unique
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

WEIGHTS = risks.load_weights()
TEXTS = ["楼上邻居半夜装修电钻声音持续不断", "隔壁狗整夜狂叫影响老人休息多次沟通无果",
         "邻居在楼道堆放大量杂物堵塞通道，双方争吵"]




def _case(stack, text: str, division: str, **extra) -> str:
    r = stack.submit({"channel": "window", "description": unique(text), "category": "dispute.neighbourhood.noise",
                      "location": {"division_code": division}, **extra})
    assert r.status_code in (200, 201, 202), r.text
    return r.json()["case_id"]


def _risks(stack, headers=OPERATOR, **params) -> list[dict]:
    r = httpx.get(f"{stack.url('mediation')}/v1/risks", headers=headers, params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["risks"]


def _act(stack, risk_id: str, action: str, headers=OPERATOR, **body) -> httpx.Response:
    return httpx.post(f"{stack.url('mediation')}/v1/risks/{risk_id}/actions", headers=headers,
                      json={"action": action, **body}, timeout=10)


def test_three_related_cases_open_one_risk_scored_by_the_weights(stack):
    division = "339901003002"
    cases = [_case(stack, TEXTS[0], division), _case(stack, TEXTS[1], division, people_involved=30),
             _case(stack, TEXTS[2], division, risk_flags=["elderly"])]
    risk = eventually(lambda: next((r for r in _risks(stack) if set(cases) <= set(r["case_ids"])), None))
    assert sorted(risk["case_ids"]) == sorted(cases) and risk["origin"] == "cluster"
    assert risk["matter"] == "dispute.neighbourhood" and risk["division_code"] == division
    expected = {"cases": 3, "repeat_reports": 0, "group_signs": 1, "violence": 0, "vulnerable": 1, "assessment": 0}
    assert risk["factors"] == expected
    score = risks.score_of(expected, WEIGHTS)
    assert risk["score"] == score == 30 * 3 / 6 + 25 / 2 + 5 / 2
    assert risk["colour"] == risks.colour_of(score, WEIGHTS).value == "blue"
    assert [r["risk_id"] for r in _risks(stack) if set(r["case_ids"]) & set(cases)] == [risk["risk_id"]]
    # the register's trace: audit keeps the event under the risk id, done by the service itself
    events = eventually(lambda: stack.timeline(risk["risk_id"]))
    assert events[0]["type"] == "org.onewindow.risk.identified.v1"
    assert events[0]["data"]["score"] == score and events[0]["actor"]["role"] == "service"
    # a fourth related case joins the same risk and raises its score
    fourth = _case(stack, "邻居家空调外机滴水到我家阳台，协商不成", division)
    grown = eventually(lambda: next((r for r in _risks(stack) if fourth in r["case_ids"]), None))
    assert grown["risk_id"] == risk["risk_id"] and grown["score"] > score
    changed = eventually(lambda: [e for e in stack.timeline(risk["risk_id"])
                             if e["type"] == "org.onewindow.risk.changed.v1"])
    assert changed[0]["data"]["previous_score"] == score and changed[0]["data"]["score"] == grown["score"]
    # 日研判: today's digest of the county lists the new risk (read from audit's trace), as new and rising
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    listed = mask_text(risk["title"])  # the digest masks free text like every page of audit's
    eventually(lambda: (lambda r: r.status_code == 200 and listed in r.text)(
        httpx.get(f"{stack.url('audit')}/v1/reports/daily", params={"division": "339901", "day": today},
                  headers=OPERATOR, timeout=20)))


def test_an_operators_risk_runs_its_lifecycle_and_refuses_what_its_state_does_not_allow(stack):
    division = "339901004003"
    cases = [_case(stack, TEXTS[0], division), _case(stack, TEXTS[1], division)]
    url = f"{stack.url('mediation')}/v1/risks"
    body = {"case_ids": cases, "title": "两户邻里噪音纠纷反复激化"}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert httpx.post(url, json=body, headers=auth("clerk-token-0001"), timeout=10).status_code == 403
    assert httpx.post(url, json=body, headers=auth("operator-token-xishan"), timeout=10).status_code in (403, 422)
    # 422 until mediation has received the cases from intake
    created = eventually(lambda: (r := httpx.post(url, json=body, headers=OPERATOR, timeout=10)).status_code == 201 and r)
    risk = created.json()
    assert risk["status"] == "identified" and risk["origin"] == "operator" and sorted(risk["case_ids"]) == sorted(cases)
    rid = risk["risk_id"]
    guardian = {"leader": "镇党委副书记", "unit_id": "town-339901004"}
    refused = _act(stack, rid, "guard", guardian=guardian)
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == "Not allowed now"
    assert _act(stack, rid, "assess").status_code == 422  # no severity
    assessed = _act(stack, rid, "assess", assessment=1.0).json()
    assert assessed["status"] == "assessed" and assessed["score"] == risk["score"] + 10
    assert _act(stack, rid, "resolve").status_code == 409  # nobody answers for it yet
    assert _act(stack, rid, "guard", guardian=guardian).json()["guardian"] == guardian
    care = {"household": "hh-339901004003-07", "colour": "red", "level": "town"}
    assert _act(stack, rid, "care", care=care).json()["care"] == [care]
    assert _act(stack, rid, "resolve").json()["status"] == "resolving"
    assert _act(stack, rid, "close", reason="双方签订协议并履行").json()["status"] == "closed"
    assert _act(stack, rid, "escalate", reason="x").status_code == 409
    assert httpx.get(f"{url}/{rid}", headers=auth("operator-token-xishan"), timeout=10).status_code == 404
    assert httpx.get(f"{url}/{rid}", headers=auth("auditor-token-0001"), timeout=10).json()["status"] == "closed"
    assert rid not in [r["risk_id"] for r in _risks(stack, auth("operator-token-xishan"))]
    # every change an event with its actor, in audit's trace
    events = eventually(lambda: (ev := stack.timeline(rid)) and len(ev) >= 6 and ev)
    assert [e["data"]["status"] for e in events] == ["identified", "assessed", "guarded", "guarded", "resolving",
                                                     "closed"]
    assert events[3]["data"]["reason"] == "三色户 hh-339901004003-07: red (包保 town)"
    assert events[-1]["data"]["guardian"] == guardian and events[-1]["data"]["reason"] == "双方签订协议并履行"
    assert {(e["actor"]["id"], e["actor"]["role"]) for e in events} == {("operator-1", "operator")}
