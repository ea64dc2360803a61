"""研判 and reports over audit's HTTP API on the running stack: a quarterly report's rankings equal
`GET /v1/metrics` for the same quarter and jurisdiction; the PDF and the daily page are served; every
route is authorised per role and jurisdiction, and a bad period is a problem document."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.conftest import OPERATOR, auth, unique

pytestmark = pytest.mark.e2e

XISHAN_OPERATOR = auth("operator-token-xishan")  # operator of county 339902 only
BEIJING = timezone(timedelta(hours=8))


def test_a_quarterly_report_ranks_as_the_metrics_api_does_and_is_authorised(stack):
    r = stack.submit({"channel": "hotline", "description": unique("有人在广场打架"),
                      "location": {"division_code": "339902001001"}})
    stack.close_case(r.json()["case_id"])
    base = stack.url("audit")
    now = datetime.now(BEIJING)
    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    params = {"division": "339902", "period": quarter}

    report = httpx.get(f"{base}/v1/reports/quarterly", headers=XISHAN_OPERATOR, params={**params, "format": "json"})
    assert report.status_code == 200, report.text
    body = report.json()
    for by in ("unit", "town", "grid"):
        m = httpx.get(f"{base}/v1/metrics", headers=XISHAN_OPERATOR, params={
            "by": by, "period": "quarter", "since": body["since"], "until": body["until"]}).json()
        ranked = [{k: x[k] for k in ("rank", "key", "period", "handled_on_time_rate", "satisfaction_rate")}
                  for x in body["levels"][by] if x["rank"] is not None]
        assert ranked == m["ranking"], by
    assert any(x["key"] == "police-339902001" and x["dispatches"] >= 1 for x in body["levels"]["unit"])
    assert datetime.fromisoformat(body["since"]).astimezone(BEIJING).hour == 0  # Beijing midnight

    page = httpx.get(f"{base}/v1/reports/quarterly", headers=XISHAN_OPERATOR, params=params)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "季度考核排名" in page.text and "police-339902001" in page.text
    pdf = httpx.get(f"{base}/v1/reports/quarterly", headers=XISHAN_OPERATOR, params={**params, "format": "pdf"},
                    timeout=120)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    day = httpx.get(f"{base}/v1/reports/daily", headers=XISHAN_OPERATOR,
                    params={"division": "339902", "day": now.date().isoformat()})
    assert day.status_code == 200 and "日研判" in day.text

    # authorised: no token, a role that reads no reports, another county, and bad input
    assert httpx.get(f"{base}/v1/reports/quarterly", params=params).status_code == 401
    assert httpx.get(f"{base}/v1/reports/quarterly", headers=auth("clerk-token-0001"), params=params).status_code == 403
    other = {"division": "339901", "period": quarter}
    assert httpx.get(f"{base}/v1/reports/quarterly", headers=XISHAN_OPERATOR, params=other).status_code == 403
    assert httpx.get(f"{base}/v1/reports/daily", headers=XISHAN_OPERATOR,
                     params={"division": "339901", "day": now.date().isoformat()}).status_code == 403
    assert httpx.get(f"{base}/v1/reports/quarterly", headers=OPERATOR, params=other).status_code == 200
    for bad in ({"division": "339902", "period": "2026-Q5"}, {"division": "x", "period": quarter}):
        r = httpx.get(f"{base}/v1/reports/quarterly", headers=OPERATOR, params=bad)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), bad
    r = httpx.get(f"{base}/v1/reports/daily", headers=OPERATOR, params={"division": "339902", "day": "2026-02-30"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{base}/v1/reports/weekly", headers=OPERATOR, params=params).status_code == 422
