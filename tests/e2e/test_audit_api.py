"""The audit query API: search, dead letters, whole-store verification, auth."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import OPERATOR, unique

pytestmark = pytest.mark.e2e


def test_search_dead_letters_and_verification(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在公园打架"),
                      "location": {"division_code": "339901002001"}})
    case = r.json()
    stack.close_case(case["case_id"])
    base = stack.url("audit")
    found = httpx.get(f"{base}/v1/cases", headers=OPERATOR, params={"case_number": case["case_number"]}).json()
    assert [c["case_id"] for c in found["cases"]] == [case["case_id"]]
    assert found["cases"][0]["last_type"] == "org.onewindow.case.closed.v1"
    by_unit = httpx.get(f"{base}/v1/cases", headers=OPERATOR, params={"unit_id": "police-339901002"}).json()
    assert case["case_id"] in {c["case_id"] for c in by_unit["cases"]}
    assert httpx.get(f"{base}/v1/cases", headers=OPERATOR, params={"division": "x"}).status_code == 422
    assert httpx.get(f"{base}/v1/dead-letters", headers=OPERATOR).status_code == 200
    verified = httpx.get(f"{base}/v1/verify", headers=OPERATOR, timeout=60).json()
    assert verified["intact"] and verified["broken"] == []
    assert httpx.get(f"{base}/v1/verify", headers={"Authorization": "Bearer clerk-token-0001"}).status_code == 403


def test_metrics_by_unit_town_and_county_with_rankings(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在车站打架"),
                      "location": {"division_code": "339901001002"}})
    stack.close_case(r.json()["case_id"])
    base = stack.url("audit")
    for by, key in (("unit", "police-339901001"), ("town", "339901001"), ("county", "339901")):
        m = httpx.get(f"{base}/v1/metrics", headers=OPERATOR, params={"by": by, "period": "quarter"}).json()
        row = next(f for f in m["figures"] if f["key"] == key)
        assert row["dispatches"] >= 1 and row["acknowledged_on_time_rate"] == 1.0
        assert row["handled_on_time_rate"] == 1.0 and row["satisfaction_rate"] == 1.0
        assert m["ranking"] and m["ranking"][0]["rank"] == 1
    assert httpx.get(f"{base}/v1/metrics", headers=OPERATOR, params={"by": "planet"}).status_code == 422
