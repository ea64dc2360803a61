"""研判 and reports as pure logic: Beijing periods, the 百分制 score and 落后预警, trends against the
baseline, the digest's choice of risks, the indicators file's checks, and pages that escape what
they show."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from services.audit import reports

SCHEME = reports.load_indicators()


def test_periods_are_beijing_days_months_and_quarters_as_utc_ranges():
    q = reports.period_of("quarterly", "2026-Q1")
    assert (q.since, q.until) == (datetime(2025, 12, 31, 16, tzinfo=UTC), datetime(2026, 3, 31, 16, tzinfo=UTC))
    assert (q.bucket, q.first_day) == ("quarter", date(2026, 1, 1))
    q4 = reports.period_of("quarterly", "2026q4")
    assert (q4.label, q4.until) == ("2026-Q4", datetime(2026, 12, 31, 16, tzinfo=UTC))
    m = reports.period_of("monthly", "2026-12")
    assert (m.since, m.until, m.bucket) == (datetime(2026, 11, 30, 16, tzinfo=UTC),
                                            datetime(2026, 12, 31, 16, tzinfo=UTC), "month")
    d = reports.period_of("daily", "2026-04-01")
    assert (d.since, d.until) == (datetime(2026, 3, 31, 16, tzinfo=UTC), datetime(2026, 4, 1, 16, tzinfo=UTC))
    # the job digests the Beijing day before: at 00:05 Beijing on 2 April (16:05 UTC on 1 April) that is 1 April
    assert reports.previous_day(datetime(2026, 4, 1, 16, 5, tzinfo=UTC)) == date(2026, 4, 1)
    assert reports.previous_day(datetime(2026, 4, 1, 15, 55, tzinfo=UTC)) == date(2026, 3, 31)


@pytest.mark.parametrize("kind, text", [("monthly", "2026-13"), ("monthly", "2026-4"), ("quarterly", "2026-Q5"),
                                        ("daily", "2026-02-30"), ("daily", "2026-04"), ("weekly", "2026-W01"),
                                        ("quarterly", "2026-Q1; DROP TABLE events")])
def test_a_period_written_any_other_way_is_refused(kind, text):
    with pytest.raises(ValueError):
        reports.period_of(kind, text)


def figure(**over) -> dict:
    base = {"key": "u", "period": "2026-04-01", "dispatches": 10, "acknowledged_on_time_rate": 1.0,
            "handled_on_time_rate": 1.0, "satisfaction_rate": 1.0, "mediation_success_rate": 1.0,
            "returns": 0, "escalations": 0}
    return {**base, **over}


def test_the_score_weighs_each_indicator_out_of_100():
    assert reports.score(figure(), SCHEME) == 100.0
    # handled on time 30 × 0.5, satisfaction 25 × 0.6, returns 5 × (1 - 2/10): 100 - 15 - 10 - 1 = 74
    assert reports.score(figure(handled_on_time_rate=0.5, satisfaction_rate=0.6, returns=2), SCHEME) == 74.0
    # more returns than dispatches cost the whole weight, never more
    assert reports.score(figure(returns=50, escalations=50), SCHEME) == 90.0


def test_indicators_without_data_are_left_out_and_the_rest_scaled_to_100():
    # no callbacks, no mediation: 60 of the weights remain; handled 0.5 → (20 + 15 + 5 + 5) / 60
    f = figure(satisfaction_rate=None, mediation_success_rate=None, handled_on_time_rate=0.5)
    assert reports.score(f, SCHEME) == 75.0
    assert reports.score(figure(dispatches=0), SCHEME) is None


def test_units_below_the_threshold_are_warned_and_the_order_is_the_metrics_ranking():
    rows = reports.assess([
        figure(key="b", handled_on_time_rate=0.5, satisfaction_rate=0.2),
        figure(key="a"),
        figure(key="c", handled_on_time_rate=0.0, acknowledged_on_time_rate=0.0, satisfaction_rate=0.0),
        figure(key="d", handled_on_time_rate=None, dispatches=1),  # nothing due: not ranked
    ], SCHEME)
    assert [(r["key"], r["rank"]) for r in rows] == [("a", 1), ("b", 2), ("c", 3), ("d", None)]
    assert [r["key"] for r in rows if r["lagging"]] == ["c"]
    assert SCHEME.assessment.lagging_below == 60


def test_weights_that_do_not_add_up_to_100_are_refused():
    data = SCHEME.model_dump()
    data["indicator"][0]["weight"] = 31
    with pytest.raises(ValidationError, match="add up to 100"):
        reports.Indicators.model_validate(data)


def test_trends_compare_a_day_with_the_daily_average_before_it():
    rules = SCHEME.digest  # 7 days, ×1.5, at least 3
    day = date(2026, 4, 8)
    counts = [(date(2026, 4, d), "noise", 1) for d in range(1, 8)] + [(day, "noise", 3)]
    counts += [(date(2026, 4, d), "water", 3) for d in range(1, 8)] + [(day, "water", 4)]  # 4 < 4.5
    counts += [(day, "fire", 2), (day, None, 9)]  # below the minimum; no category
    counts += [(date(2026, 3, 20), "fire", 50)]  # before the baseline window
    assert reports.trends(counts, day, rules) == [{"key": "noise", "count": 3, "baseline": 1.0}]


def _risk(kind, rid, at, **data):
    return {"type": f"org.onewindow.risk.{kind}.v1", "at": datetime(2026, 4, 1, at, tzinfo=UTC),
            "data": {"risk_id": rid, "division_code": "339901", **data}}


def test_the_digest_lists_new_risks_and_the_latest_rise_of_others():
    facts = {"risks": [
        _risk("changed", "r2", 3, score=40, previous_score=30, colour="yellow"),
        _risk("identified", "r1", 1, title="纠纷 联系人张三 13812345678", score=50, colour="yellow"),
        _risk("changed", "r1", 2, score=70, previous_score=50, colour="orange"),
        _risk("changed", "r2", 4, score=55, previous_score=40, colour="orange"),
        _risk("changed", "r3", 5, score=10, previous_score=40, colour="green"),
        _risk("changed", "r4", 6, score=None, previous_score=40, colour="green"),
    ], "titles": {"r2": "噪音"}, "categories": [], "places": [], "overdue": [], "escalated": [],
        "repeats": [{"case_number": "A", "today": 1, "window": 2}, {"case_number": "B", "today": 0, "window": 5},
                    {"case_number": "C", "today": 1, "window": 1}]}
    d = reports.digest("339901", "某县", date(2026, 4, 1), facts, SCHEME.digest)
    assert [r["risk_id"] for r in d["new_risks"]] == ["r1"]
    assert "13812345678" not in d["new_risks"][0]["title"] and "张三" not in d["new_risks"][0]["title"]
    assert [(r["risk_id"], r["title"], r["score"]) for r in d["rising_risks"]] == [("r2", "噪音", 55)]
    assert d["repeat_reports"] == [{"case_number": "A", "today": 1, "window": 2}]


def test_pages_escape_what_they_show():
    facts = {"risks": [_risk("identified", "r1", 1, title="<script>alert(1)</script>", score=50, colour="red")],
             "categories": [], "places": [], "overdue": [], "escalated": [], "repeats": []}
    page = reports.digest_html(reports.digest("339901", "<b>县</b>", date(2026, 4, 1), facts, SCHEME.digest))
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>县" not in page
    r = reports.report("339901", "县", reports.period_of("monthly", "2026-04"),
                       {"unit": [figure(key='<img src=x onerror=1>')]}, SCHEME)
    assert "<img" not in reports.report_html(r)
