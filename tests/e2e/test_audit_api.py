"""The audit query API: search, dead letters, whole-store verification (a job, auditors only), auth."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import OPERATOR, auth, unique

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
    job = verify_store(base)
    assert job["status"] == "done" and job["requested_by"] == "auditor-1", job
    verified = job["result"]
    assert verified["intact"] and verified["findings"] == [] and verified["broken"] == [], verified["findings"]
    assert verified["counts"]["events"] >= 7 and verified["counts"]["guards"] == 6 and verified["checked_at"]
    for who in ("clerk-token-0001", "operator-token-0001"):  # the whole store is the auditors' to verify
        headers = auth(who)
        assert httpx.post(f"{base}/v1/verifications", headers=headers).status_code == 403
        assert httpx.get(f"{base}/v1/verifications/{job['id']}", headers=headers).status_code == 403


def verify_store(base: str, timeout: float = 60.0) -> dict:
    """Start a whole-store verification as an auditor and wait for its end (after any running one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.post(f"{base}/v1/verifications", headers=AUDITOR)
        if r.status_code == 409:  # one at a time: another is running
            time.sleep(0.2)
            continue
        assert r.status_code == 202, r.text
        while time.monotonic() < deadline:
            job = httpx.get(base + r.headers["location"], headers=AUDITOR).json()
            if job["status"] != "running":
                return job
            time.sleep(0.2)
    raise AssertionError(f"no verification done after {timeout}s")


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


AUDITOR = auth("auditor-token-0001")
XISHAN_OPERATOR = auth("operator-token-xishan")


def test_holder_masking_per_role_and_jurisdiction(stack):
    text = unique("邻居噪音扰民，联系电话13812345678")
    r = stack.submit({"channel": "hotline", "description": text,
                      "location": {"division_code": "339901002001", "address": "文三路90号3幢"}})
    case = r.json()
    base = stack.url("audit")
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(f"{base}/v1/cases/{case['case_id']}", headers=OPERATOR)
        if r.status_code == 200 and r.json()["holder"]["unit_id"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    now = r.json()
    assert now["status"] in {"dispatched", "accepted", "in_progress", "resolved"}
    assert now["holder"]["unit_id"] and now["holder"]["unit_id"] in now["units"]
    held = httpx.get(f"{base}/v1/cases", headers=OPERATOR, params={"holder": now["holder"]["unit_id"]}).json()
    assert case["case_id"] in {c["case_id"] for c in held["cases"]}

    def received(headers):
        body = httpx.get(f"{base}/v1/cases/{case['case_id']}/timeline", headers=headers).json()
        return body["personal_data"], next(e["data"] for e in body["events"]
                                           if e["type"] == "org.onewindow.case.received.v1")

    shown, data = received(AUDITOR)
    assert shown == "shown" and "13812345678" in data["description"] and data["location"]["address"] == "文三路90号3幢"
    masked, data = received(OPERATOR)
    assert masked == "masked" and "138****5678" in data["description"] and "13812345678" not in data["description"]
    assert data["location"]["address"] == "文三…" and data["location"]["division_code"] == "339901002001"

    # an operator of another county neither finds nor reads the case
    for path in (f"/v1/cases/{case['case_id']}", f"/v1/cases/{case['case_id']}/timeline",
                 f"/v1/cases/{case['case_id']}/verify"):
        assert httpx.get(base + path, headers=XISHAN_OPERATOR).status_code == 404, path
    found = httpx.get(f"{base}/v1/cases", headers=XISHAN_OPERATOR, params={"case_number": case["case_number"]})
    assert found.status_code == 200 and found.json()["cases"] == []
    bad = httpx.get(f"{base}/v1/cases", headers=OPERATOR, params={"since": "2026-02-01T00:00:00Z",
                                                                   "until": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{base}/v1/cases", params={"overdue": "true"}).status_code == 401


def test_an_operator_of_one_county_reads_nothing_of_another(stack):
    """Jurisdiction on every read: the live feed, metrics and dead letters of county 339901 are not
    visible to an operator of county 339902 (the feed is filtered in SQL, from id 0)."""
    import json

    r = stack.submit({"channel": "hotline", "description": unique("有人在广场打架"),
                      "location": {"division_code": "339901001001"}})
    case_id = r.json()["case_id"]
    stack.close_case(case_id)
    base = stack.url("audit")

    def feed(headers) -> list[dict]:
        items = []
        with httpx.stream("GET", f"{base}/v1/events/stream", params={"after_id": 0}, headers=headers,
                          timeout=30) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    items.append(json.loads(line[6:]))
                elif line.startswith(":"):  # keep-alive: the history is read
                    break
        return items

    assert case_id in {e["case_id"] for e in feed(OPERATOR)}
    seen = feed(XISHAN_OPERATOR)
    assert case_id not in {e["case_id"] for e in seen}
    assert all(stack.sql("SELECT division FROM audit.case_summaries WHERE case_id = $1", e["case_id"])[0]["division"]
               .startswith("339902") for e in seen[:20])
    xishan = httpx.get(f"{base}/v1/metrics", headers=XISHAN_OPERATOR, params={"by": "unit"}).json()
    assert not any(f["key"].endswith("339901") or "339901" in f["key"] for f in xishan["figures"])
    assert httpx.get(f"{base}/v1/dead-letters", headers=XISHAN_OPERATOR).status_code == 403
    assert httpx.post(f"{base}/v1/verifications", headers=XISHAN_OPERATOR).status_code == 403
