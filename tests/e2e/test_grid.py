"""The grid on the running system: a grid worker's report carries the worker's grid and is refused
outside it; a minor matter on the grid's access list goes to the grid first (小事不出格) and one that
is not never does; an operator cannot send a grid anything else; metrics by grid and channel."""

from __future__ import annotations


import httpx
import pytest

from tests.conftest import ISSUER, OPERATOR, auth, unique
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

GRID = "339901001001-01"
GRID_WORKER = auth("grid-token-0001")  # grid-1: a 专职网格员 of GRID in the grid directory


def _report(stack, text: str, division: str = "339901001001", headers=GRID_WORKER, **over) -> httpx.Response:
    return stack.submit({"channel": "grid", "description": unique(text), "location": {"division_code": division},
                         **over}, headers=headers)




def _dispatches(stack, case_id: str) -> list[dict]:
    return eventually(lambda: [e["data"] for e in stack.timeline(case_id) if e["type"] == "org.onewindow.case.dispatched.v1"])


def test_a_grid_workers_report_outside_the_grid_is_refused(stack):
    other_village = _report(stack, "小区路灯坏了好几天", division="339901001002")  # in the worker's town
    assert other_village.status_code == 403 and other_village.json()["title"] == "Outside your grid"
    assert other_village.headers["content-type"].startswith("application/problem+json")
    other_grid = _report(stack, "楼道堆满杂物", location={"division_code": "339901001001",
                                                           "grid_id": "339901001001-02"})
    assert other_grid.status_code == 403 and "339901001001-02" in other_grid.json()["detail"]
    unknown = stack.submit({"channel": "window", "description": unique("楼道堆满杂物"),
                            "location": {"division_code": "339901001001", "grid_id": "339901001001-99"}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["detail"].endswith("unknown grid")
    wrong_claim = ISSUER.mint("grid-1", "grid", ["339901001"], grid="339901001001-02")
    r = _report(stack, "楼道堆满杂物", headers={"Authorization": f"Bearer {wrong_claim}"})
    assert r.status_code == 403 and r.json()["title"] == "Outside your grid"
    # a new worker the directory does not list yet, whose token names the market's grid
    newcomer = ISSUER.mint("gw-newcomer", "grid", ["339901001002"], grid="339901001002-M1")
    r = _report(stack, "市场摊位之间因占道经营起争执", division="339901001002",
                headers={"Authorization": f"Bearer {newcomer}"})
    assert r.status_code == 202, r.text
    received = eventually(lambda: stack.timeline(r.json()["case_id"]))[0]
    assert received["data"]["location"]["grid_id"] == "339901001002-M1"
    assert received["actor"]["id"] == "gw-newcomer"


def test_a_minor_matter_on_the_access_list_goes_to_the_grid_and_others_never_do(stack):
    r = _report(stack, "楼上邻居每晚十一点后还在拖动家具，噪音很大", category="dispute.neighbourhood.noise")
    assert r.status_code == 202, r.text
    case_id = r.json()["case_id"]
    [dispatch] = _dispatches(stack, case_id)
    assert (dispatch["unit_id"], dispatch["unit_kind"], dispatch["location"]["grid_id"]) == (
        "grid-" + GRID, "grid", GRID)  # the operator sees the grid id whole
    received = stack.timeline(case_id)[0]
    assert received["type"] == "org.onewindow.case.received.v1" and received["actor"]["id"] == "grid-1"
    assert any(r.key == case_id.encode() for r in stack.read_topic("dispatch.grid"))
    stack.close_case(case_id)  # the simulated grid signs for it and resolves it

    fight = _report(stack, "两名男子在小区门口扭打", category="public_security.violence.fight")
    police_case = fight.json()["case_id"]
    assert [d["unit_kind"] for d in _dispatches(stack, police_case)] == ["police"]
    consumer = _report(stack, "小区门口超市卖过期食品拒不退款", category="dispute.consumer.product_quality")
    assert all(d["unit_kind"] != "grid" for d in _dispatches(stack, consumer.json()["case_id"]))  # a market's

    # from the manual queue, an operator may send the grid its own matters and nothing else
    queued = stack.submit({"channel": "window", "description": unique("嗯嗯啊啊哦哦"),
                           "location": {"division_code": "339901001001", "grid_id": GRID}}).json()["case_id"]
    eventually(lambda: any(e["type"] == "org.onewindow.case.manual_triage_required.v1" for e in stack.timeline(queued)))
    url = f"{stack.url('router')}/v1/cases/{queued}/dispatch"
    refused = httpx.post(url, headers=OPERATOR, timeout=10,
                         json={"category": "public_security.violence.fight", "unit_id": "grid-" + GRID})
    assert refused.status_code == 422 and refused.json()["title"] == "Not a grid matter"
    uncatalogued = httpx.post(url, headers=OPERATOR, timeout=10,
                              json={"category_text": "别的事", "unit_id": "grid-" + GRID})
    assert uncatalogued.status_code == 422
    allowed = httpx.post(url, headers=OPERATOR, timeout=10,
                         json={"category": "dispute.neighbourhood.pets", "unit_id": "grid-" + GRID})
    assert allowed.status_code == 200, allowed.text
    assert [d["unit_id"] for d in _dispatches(stack, queued)] == ["grid-" + GRID]
    assert not any(r.key == police_case.encode() for r in stack.read_topic("dispatch.grid"))

    def grid_figures():
        r = httpx.get(f"{stack.url('audit')}/v1/metrics", params={"by": "grid"}, headers=OPERATOR, timeout=10)
        return [f for f in r.json()["figures"] if f["key"] == GRID and f["handled_on_time_rate"] is not None]

    [figure] = eventually(grid_figures)
    assert figure["dispatches"] >= 1 and figure["handled_on_time_rate"] == 1.0
    by_channel = httpx.get(f"{stack.url('audit')}/v1/metrics", params={"by": "channel"}, headers=OPERATOR,
                           timeout=10).json()
    assert "grid" in {f["key"] for f in by_channel["figures"]}
