"""研判 and reports on a real PostgreSQL, seeded through audit's own handler (record_events), with
hand-computed expectations: a county's digest of a Beijing day lists exactly the risks and trends of
that day; the scheduled job stores it once however many processes run it; a quarterly report's
rankings equal the metrics API's for the quarter, with dispatches on both sides of a month (and
quarter) boundary of Beijing time; the PDF's pages render as images that are not blank."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.audit import domain, handlers, reports, storage
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound

P = "org.onewindow."
COUNTY, TOWN_A, TOWN_B, OTHER_COUNTY = "339901", "339901001", "339901002", "339902"
SCHEME = reports.load_indicators()


@pytest.fixture
def schema() -> str:
    return f"ar_{secrets.token_hex(3)}"


@pytest.fixture
async def pool(database_url: str, schema: str):
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def _event(subject: str, event_type: str, data: dict, at: datetime, topic: str = "router.decisions") -> Inbound:
    """An event as the broker hands it to audit: its broker timestamp is `at` (what reports count by)."""
    ev = CloudEvent(id=str(uuid.uuid4()), source="/test", type=event_type, subject=subject, time=at, data=data)
    record = SimpleNamespace(topic=topic, partition=0, offset=secrets.randbelow(10**9),
                             timestamp=int(at.timestamp() * 1000))
    return Inbound(record, ev, None)


async def _record(pool, items: list[Inbound]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, items)


def bj(day: date, hour: int, minute: int = 0) -> datetime:
    """A Beijing wall-clock time as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=reports.BEIJING).astimezone(UTC)


def received(case_id: str, number: str, category: str, division: str, at: datetime) -> Inbound:
    return _event(case_id, P + "case.received.v1", {
        "case_id": case_id, "case_number": number, "category": category, "location": {"division_code": division},
        "title": "t", "description": "d", "channel": "hotline", "received_at": at.isoformat()}, at, "intake.cases")


def risk(kind: str, risk_id: str, division: str, at: datetime, **data) -> Inbound:
    return _event(risk_id, P + f"risk.{kind}.v1", {"risk_id": risk_id, "division_code": division, "at": at.isoformat(),
                                                  "case_ids": [], **data}, at, "mediation.risks")


# --- 日研判 -------------------------------------------------------------------------------------------

DAY = date(2026, 4, 1)


async def seed_day(pool) -> dict:
    """A county's day with its week before, and noise around it that the digest must leave out."""
    ids = {name: str(uuid.uuid4()) for name in ("new1", "new2", "rising", "falling", "yesterday", "other", "new_rising")}
    items = [
        # new that day (one a minute after Beijing midnight: 16:01 UTC the day before)
        risk("identified", ids["new1"], TOWN_A, bj(DAY, 0, 1), title="集市摊位纠纷聚集", matter="dispute.market",
             origin="cluster", score=72.5, colour="orange", status="identified"),
        risk("identified", ids["new2"], COUNTY, bj(DAY, 23, 59), title="工资拖欠", matter=None, origin="operator",
             score=40.0, colour="yellow", status="identified"),
        # identified and raised the same day: new, not also rising
        risk("identified", ids["new_rising"], TOWN_B, bj(DAY, 9), title="拆迁补偿", matter="petition.land",
             origin="operator", score=50.0, colour="yellow", status="identified"),
        risk("changed", ids["new_rising"], TOWN_B, bj(DAY, 10), status="assessed", previous_status="identified",
             score=81.0, previous_score=50.0, colour="red", previous_colour="yellow", guardian=None, reason=None),
        # identified before the day (23:59 Beijing the day before), raised twice that day: the latest raise
        risk("identified", ids["rising"], TOWN_B, bj(DAY - timedelta(days=1), 23, 59), title="邻里噪音",
             matter="dispute.neighbour", origin="operator", score=30.0, colour="blue", status="identified"),
        risk("changed", ids["rising"], TOWN_B, bj(DAY, 8), status="assessed", previous_status="identified",
             score=45.0, previous_score=30.0, colour="yellow", previous_colour="blue", guardian=None, reason=None),
        risk("changed", ids["rising"], TOWN_B, bj(DAY, 15), status="guarded", previous_status="assessed",
             score=62.0, previous_score=45.0, colour="orange", previous_colour="yellow",
             guardian={"leader": "l-1", "unit_id": "u-town-b"}, reason=None),
        # lowered that day: not rising
        risk("changed", ids["falling"], TOWN_A, bj(DAY, 11), status="resolving", previous_status="guarded",
             score=20.0, previous_score=55.0, colour="green", previous_colour="orange", guardian=None, reason=None),
        # another county, and the day after (00:00 Beijing)
        risk("identified", ids["other"], OTHER_COUNTY, bj(DAY, 12), title="x", matter=None, origin="operator",
             score=90.0, colour="red", status="identified"),
        risk("identified", ids["yesterday"], TOWN_A, bj(DAY + timedelta(days=1), 0), title="y", matter=None,
             origin="operator", score=90.0, colour="red", status="identified"),
    ]
    # the week before: 1 noise case a day in town A, 3 water cases a day in town B
    n = 0
    for back in range(1, 8):
        d = DAY - timedelta(days=back)
        items.append(received(str(uuid.uuid4()), f"B{n}", "noise", TOWN_A + "001", bj(d, 10)))
        n += 1
        for _ in range(3):
            items.append(received(str(uuid.uuid4()), f"B{n}", "water", TOWN_B + "001", bj(d, 11)))
            n += 1
    # the day: noise 4 in town A (4 ≥ 1.5 × 1: up), water 3 in town B (3 < 1.5 × 3: not up)
    cases = [str(uuid.uuid4()) for _ in range(7)]
    for i, c in enumerate(cases[:4]):
        items.append(received(c, f"D{i}", "noise", TOWN_A + "002", bj(DAY, 9 + i)))
    for i, c in enumerate(cases[4:]):
        items.append(received(c, f"D{4 + i}", "water", TOWN_B + "002", bj(DAY, 14 + i)))
    # noise elsewhere is not the county's
    items += [received(str(uuid.uuid4()), f"X{i}", "noise", OTHER_COUNTY + "001001", bj(DAY, 9)) for i in range(5)]
    # D0 goes red and is escalated that day; D1 went red the day before (not listed); D4 reported twice
    # that day and once the day before (3 in the window), D5 reported once that day (below the minimum)
    dispatch = str(uuid.uuid4())
    items += [
        _event(cases[0], P + "supervision.notice.v1", {"dispatch_id": dispatch, "unit_id": "u-town-a", "clock": "resolve",
                                                       "colour": "red", "due_at": bj(DAY, 12).isoformat()}, bj(DAY, 12)),
        _event(cases[0], P + "case.escalated.v1", {"dispatch_id": dispatch, "from_unit_id": "u-town-a",
                                                   "to_unit_id": "u-county", "to_level": "county", "reason": "red"},
               bj(DAY, 13)),
        _event(cases[1], P + "supervision.notice.v1", {"dispatch_id": str(uuid.uuid4()), "unit_id": "u-town-a",
                                                       "clock": "resolve", "colour": "red",
                                                       "due_at": bj(DAY, 0).isoformat()},
               bj(DAY - timedelta(days=1), 20)),
    ]
    for at in (bj(DAY - timedelta(days=1), 18), bj(DAY, 16), bj(DAY, 17)):
        items.append(_event(cases[4], P + "case.duplicate_reported.v1", {"case_number": "D4"}, at, "intake.cases"))
    items.append(_event(cases[5], P + "case.duplicate_reported.v1", {"case_number": "D5"}, bj(DAY, 18), "intake.cases"))
    # one batch would fold a case's summary before its received event arrives: cases first, then the rest
    await _record(pool, [i for i in items if i.event.type == P + "case.received.v1"])
    await _record(pool, [i for i in items if i.event.type != P + "case.received.v1"])
    return ids


async def test_a_digest_of_a_seeded_day_lists_exactly_its_risks_and_trends(pool):
    ids = await seed_day(pool)
    d = await handlers.make_digest(pool, COUNTY, DAY, SCHEME)

    assert [r["risk_id"] for r in d["new_risks"]] == [ids["new1"], ids["new_rising"], ids["new2"]]
    assert [r["title"] for r in d["new_risks"]] == ["集市摊位纠纷聚集", "拆迁补偿", "工资拖欠"]
    assert [(r["risk_id"], r["title"], r["score"], r["previous_score"], r["colour"]) for r in d["rising_risks"]] == \
        [(ids["rising"], "邻里噪音", 62.0, 45.0, "orange")]
    assert d["categories_up"] == [{"key": "noise", "count": 4, "baseline": 1.0}]
    assert d["places_up"] == [{"key": TOWN_A, "count": 4, "baseline": 1.0}]
    assert [(c["case_number"], c["unit_id"], c["clock"]) for c in d["overdue"]] == [("D0", "u-town-a", "resolve")]
    assert [(c["case_number"], c["to_unit_id"]) for c in d["escalated"]] == [("D0", "u-county")]
    assert d["repeat_reports"] == [{"case_number": "D4", "today": 2, "window": 3}]
    assert d["received"] == 7

    page = reports.digest_html(d)
    for expected in ("日研判", "集市摊位纠纷聚集", "noise", "D0", "D4"):
        assert expected in page


async def test_the_daily_job_stores_each_countys_digest_once_across_processes(pool):
    ids = await seed_day(pool)
    now = bj(DAY + timedelta(days=1), 0, 5)  # five minutes into the next Beijing day
    # three audit processes at once, then a restart
    runs = await asyncio.gather(*(handlers.daily_digests(pool, now, SCHEME, catch_up_days=1) for _ in range(3)))
    again = await handlers.daily_digests(pool, now, SCHEME, catch_up_days=1)
    assert sum(runs) == 2 and again == 0  # the county and the other county, once each
    rows = await pool.fetch("SELECT county, day, indicators FROM digests ORDER BY county")
    assert [(r["county"], r["day"], r["indicators"]) for r in rows] == \
        [(COUNTY, DAY, SCHEME.version), (OTHER_COUNTY, DAY, SCHEME.version)]
    assert await storage.stored_digest(pool, COUNTY, DAY) == await handlers.make_digest(pool, COUNTY, DAY, SCHEME)
    # each stored digest's event is in the outbox with it, once, keyed by the digest's id
    rows = await pool.fetch("SELECT topic, key, value FROM outbox ORDER BY seq")
    assert [r["topic"] for r in rows] == ["audit.digests", "audit.digests"]
    events = {json.loads(r["value"])["division_code"]: (r["key"], json.loads(r["value"])) for r in rows}
    key, event = events[COUNTY]
    assert key.decode() == event["digest_id"] == handlers.derive_id("daily-digest", COUNTY, DAY.isoformat())
    assert event["day"] == DAY.isoformat() and event["received"] == 7
    assert event["new_risk_ids"] == [ids["new1"], ids["new_rising"], ids["new2"]]
    assert event["rising_risk_ids"] == [ids["rising"]] and event["categories_up"] == ["noise"]
    assert (event["overdue"], event["escalated"], event["repeat_reports"]) == (1, 1, 1)
    assert event["page"] == f"/v1/reports/daily?division={COUNTY}&day={DAY}"


async def test_the_daily_job_catches_up_days_missed_while_audit_was_down(pool):
    await seed_day(pool)
    await handlers.daily_digests(pool, bj(DAY, 0, 5), SCHEME, catch_up_days=1)  # the day before DAY
    # down for two days: at 00:05 on DAY + 3 the job digests DAY, DAY + 1 and DAY + 2, not DAY - 1 again
    assert await handlers.daily_digests(pool, bj(DAY + timedelta(days=3), 0, 5), SCHEME) == 6
    rows = await pool.fetch("SELECT day, count(*) AS n FROM digests GROUP BY 1 ORDER BY 1")
    assert [(r["day"], r["n"]) for r in rows] == [(DAY + timedelta(days=i), 2) for i in range(-1, 3)]
    assert len((await storage.stored_digest(pool, COUNTY, DAY))["new_risks"]) == 3


# --- quarterly ranking = the metrics API, across Beijing boundaries -------------------------------------


def dispatched(case_id: str, dispatch_id: str, unit: str, division: str, grid: str, at: datetime) -> Inbound:
    return _event(case_id, P + "case.dispatched.v1", {
        "case_id": case_id, "dispatch_id": dispatch_id, "unit_id": unit, "role": "lead",
        "location": {"division_code": division, "grid_id": grid},
        "acknowledge_by": (at + timedelta(hours=1)).isoformat(), "resolve_by": (at + timedelta(days=2)).isoformat(),
    }, at, "dispatch.police")


def feedback(case_id: str, kind: str, dispatch_id: str, at: datetime) -> Inbound:
    return _event(case_id, P + f"dispatch.{kind}.v1", {"case_id": case_id, "dispatch_id": dispatch_id}, at,
                  "feedback.police")


async def seed_quarter(pool) -> None:
    """Q2 2026 of Beijing time: 2026-03-31T16:00Z .. 2026-06-30T16:00Z. Unit A resolves on time, unit B
    half on time, unit C late; one dispatch of each side of both boundaries is outside the quarter."""
    items = []

    def case(unit: str, division: str, grid: str, at: datetime, resolved_after: timedelta | None) -> None:
        c, d = str(uuid.uuid4()), str(uuid.uuid4())
        items.append(dispatched(c, d, unit, division, grid, at))
        items.append(feedback(c, "accepted", d, at + timedelta(minutes=10)))
        if resolved_after is not None:
            items.append(feedback(c, "resolved", d, at + resolved_after))

    on_time, late = timedelta(days=1), timedelta(days=3)
    start, end = date(2026, 4, 1), date(2026, 6, 30)
    # in the quarter: 00:30 Beijing on 1 April (still 31 March in UTC), 23:30 Beijing on 30 June,
    # and across the April/May month boundary (23:50 Beijing 30 April, 00:10 Beijing 1 May)
    case("u-a", TOWN_A + "001", "g-a1", bj(start, 0, 30), on_time)
    case("u-a", TOWN_A + "001", "g-a1", bj(end, 23, 30), on_time)
    case("u-b", TOWN_B + "001", "g-b1", bj(date(2026, 4, 30), 23, 50), on_time)
    case("u-b", TOWN_B + "001", "g-b2", bj(date(2026, 5, 1), 0, 10), late)
    case("u-c", TOWN_B + "002", "g-b2", bj(date(2026, 5, 20), 9), late)
    # outside: 23:30 Beijing on 31 March (Q1), 00:30 Beijing on 1 July (Q3), both resolved late for unit A
    case("u-a", TOWN_A + "001", "g-a1", bj(date(2026, 3, 31), 23, 30), late)
    case("u-a", TOWN_A + "001", "g-a1", bj(date(2026, 7, 1), 0, 30), late)
    # another county in the quarter: not in this county's report
    case("u-x", OTHER_COUNTY + "001001", "g-x", bj(date(2026, 5, 5), 9), on_time)
    await _record(pool, [i for i in items if i.event.type.endswith("dispatched.v1")])
    await _record(pool, [i for i in items if not i.event.type.endswith("dispatched.v1")])


async def test_a_quarterly_reports_rankings_equal_the_metrics_api_across_beijing_boundaries(pool):
    await seed_quarter(pool)
    period = reports.period_of("quarterly", "2026-Q2")
    r = await handlers.make_report(pool, period, COUNTY, SCHEME)

    for level in ("unit", "town", "grid"):
        # what GET /v1/metrics?by=level&period=quarter&since&until answers for a grant on the county
        rows = await storage.metrics(pool, level, "quarter", period.since, period.until, [COUNTY])
        api_ranking = domain.ranking(domain.figures([dict(x) for x in rows]))
        report_ranking = [{"rank": x["rank"], "key": x["key"], "period": x["period"],
                           "handled_on_time_rate": x["handled_on_time_rate"],
                           "satisfaction_rate": x["satisfaction_rate"]} for x in r.levels[level] if x["rank"]]
        assert report_ranking == api_ranking
    # and by hand: one Beijing quarter, starting on 1 April; the boundary dispatches counted right
    assert {x["period"] for rows in r.levels.values() for x in rows} == {"2026-04-01"}
    units = {x["key"]: x for x in r.levels["unit"]}
    assert [x["key"] for x in r.levels["unit"]] == ["u-a", "u-b", "u-c"]
    assert (units["u-a"]["dispatches"], units["u-b"]["dispatches"], units["u-c"]["dispatches"]) == (2, 2, 1)
    assert (units["u-a"]["handled_on_time_rate"], units["u-b"]["handled_on_time_rate"],
            units["u-c"]["handled_on_time_rate"]) == (1.0, 0.5, 0.0)
    assert [x["key"] for x in r.levels["town"]] == [TOWN_A, TOWN_B]
    assert [x["key"] for x in r.levels["grid"]] == ["g-a1", "g-b1", "g-b2"]
    # 百分制: acknowledged and handled known (50 of the weights), no returns or escalations (10 more):
    # A (20+30+5+5)/60 = 100, B (20+15+10)/60 = 75, C (20+0+10)/60 = 50 → below 60: 落后预警
    assert [units[k]["score"] for k in ("u-a", "u-b", "u-c")] == [100.0, 75.0, 50.0]
    assert [(level, row["key"]) for level, row in r.lagging()] == [("unit", "u-c"), ("grid", "g-b2")]
    # a month of it: April holds the 1 April and 30 April dispatches, May the 1 May one
    april = await handlers.make_report(pool, reports.period_of("monthly", "2026-04"), COUNTY, SCHEME)
    may = await handlers.make_report(pool, reports.period_of("monthly", "2026-05"), COUNTY, SCHEME)
    assert {x["key"]: x["dispatches"] for x in april.levels["unit"]} == {"u-a": 1, "u-b": 1}
    assert {x["key"]: x["dispatches"] for x in may.levels["unit"]} == {"u-b": 1, "u-c": 1}


async def test_the_reports_pdf_pages_render_and_are_not_blank(pool, tmp_path: Path):
    await seed_quarter(pool)
    r = await handlers.make_report(pool, reports.period_of("quarterly", "2026-Q2"), COUNTY, SCHEME)
    body = reports.pdf(reports.report_html(r))
    assert body.startswith(b"%PDF")
    (tmp_path / "report.pdf").write_bytes(body)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(tmp_path / "report.pdf"), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    from PIL import Image

    for page in pages:
        with Image.open(page) as im:
            grey = im.convert("L")
            dark = sum(grey.histogram()[:128])  # pixels of ink (text, rules)
            assert dark > 0.005 * grey.width * grey.height, f"{page.name} is blank"


# --- the CLI writes the same files ---------------------------------------------------------------------


def onewindow_report(database_url: str, schema: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "report", *args, "--out", str(out),
                           "--schema", schema], env={**os.environ, "DATABASE_URL": database_url},
                          capture_output=True, text=True, timeout=300)


async def test_onewindow_report_writes_the_pages_the_api_serves(pool, schema: str, database_url: str,
                                                                 tmp_path: Path):
    await seed_quarter(pool)
    await seed_day(pool)
    await handlers.daily_digests(pool, bj(DAY + timedelta(days=1), 1), SCHEME)

    done = await asyncio.to_thread(onewindow_report, database_url, schema, tmp_path, "quarterly",
                                   "--division", COUNTY, "--period", "2026-q2")
    assert done.returncode == 0, done.stderr
    period = reports.period_of("quarterly", "2026-Q2")
    expected = reports.report_html(await handlers.make_report(pool, period, COUNTY, SCHEME))
    assert (tmp_path / f"quarterly-{COUNTY}-2026-Q2.html").read_text(encoding="utf-8") == expected
    assert (tmp_path / f"quarterly-{COUNTY}-2026-Q2.pdf").read_bytes().startswith(b"%PDF")

    done = await asyncio.to_thread(onewindow_report, database_url, schema, tmp_path, "daily",
                                   "--division", COUNTY, "--period", DAY.isoformat())
    assert done.returncode == 0, done.stderr
    stored = await storage.stored_digest(pool, COUNTY, DAY)
    assert (tmp_path / f"daily-{COUNTY}-{DAY}.html").read_text(encoding="utf-8") == reports.digest_html(stored)

    # a bad argument is one clear line and exit 2, nothing written
    done = await asyncio.to_thread(onewindow_report, database_url, schema, tmp_path / "bad", "daily",
                                   "--division", "339901001", "--period", DAY.isoformat())
    assert done.returncode == 2 and "county code" in done.stderr
    assert not (tmp_path / "bad").exists()


async def test_audit_login_stores_digests_and_their_events_but_cannot_change_them(new_database):
    """As audit's own least-privileged login (as the service runs): the job inserts the digest and its
    outbox row; the digest cannot be rewritten or deleted."""
    import asyncpg

    from shared.db import login_url, service_role

    db = await asyncio.to_thread(new_database)
    await migrate(db, "audit", MIGRATIONS, role=service_role("audit"))
    pool = await create_pool(login_url(db, service_role("audit")), "audit")
    try:
        await seed_day(pool)
        assert await handlers.daily_digests(pool, bj(DAY + timedelta(days=1), 0, 5), SCHEME, catch_up_days=1) == 2
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = 'audit.digests'") == 2
        for sql in ("UPDATE digests SET content = '{}'::jsonb", "DELETE FROM digests", "TRUNCATE digests"):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await pool.execute(sql)
    finally:
        await pool.close()


def test_the_printer_fetches_nothing_a_page_names():
    """Defence in depth behind the escaping: a page that did name a URL or a file gets neither."""
    import http.server
    import threading

    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        body = reports.pdf(f'<html><head><link rel="stylesheet" href="{url}/style.css"></head><body>'
                           f'<img src="{url}/x.png"><img src="file:///etc/hostname">报告</body></html>')
        assert body.startswith(b"%PDF")
        # the same page through an ordinary fetcher does reach the server: the check can fail
        from weasyprint import HTML

        HTML(string=f'<img src="{url}/control.png">').write_pdf()
    finally:
        server.shutdown()
    assert asked == ["/control.png"]
