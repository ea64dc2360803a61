"""The console's audit queries on a real PostgreSQL against hand-computed expectations: open, overdue
and high-risk cases per town and county (the map), and cases received and closed per Beijing day by
category and channel (the trend charts), each cut to a jurisdiction."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from services.audit import domain, handlers, storage
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound

P = "org.onewindow."
A, B, C, D = (str(uuid.uuid4()) for _ in range(4))


@pytest.fixture
async def pool(database_url: str):
    schema = f"cq_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    async with pool.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, [_inbound(*e) for e in HISTORY])
    yield pool
    await pool.close()


def _inbound(case_id: str, kind: str, data: dict, at: datetime) -> Inbound:
    ev = CloudEvent(id=str(uuid.uuid4()), source="/test", type=f"{P}{kind}.v1", subject=case_id, time=at,
                    data={"case_id": case_id, **data})
    return Inbound(SimpleNamespace(topic="t", partition=0, offset=secrets.randbelow(10**6)), ev, None)


def utc(day: int, hour: int) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


def received(case: str, channel: str, division: str, at: datetime) -> tuple:
    return case, "case.received", {"channel": channel, "location": {"division_code": division}}, at


def dispatched(case: str, dispatch: str, category: str, risk: str, at: datetime) -> tuple:
    return case, "case.dispatched", {"dispatch_id": dispatch, "unit_id": "police-x", "category": category,
                                     "risk_colour": risk, "role": "lead"}, at


HISTORY = [
    # A: 湖滨街道, hotline, received 23:30 Beijing on 1 Dec, closed 00:30 Beijing on 3 Dec
    received(A, "hotline", "339901001001", utc(1, 15).replace(minute=30)),
    dispatched(A, "a1", "public_security.violence.fight", "orange", utc(1, 16)),
    (A, "case.closed", {}, utc(2, 16).replace(minute=30)),
    # B: 城关镇, grid, received and refused on 2 Dec
    received(B, "grid", "339902001001", utc(2, 1)),
    (B, "case.refused", {"code": "other", "note": "x"}, utc(2, 2)),
    # C: 望江街道, hotline, dispatched red and overdue (a red notice on the lead dispatch)
    received(C, "hotline", "339901002001", utc(2, 3)),
    dispatched(C, "c1", "public_security.violence.fight", "red", utc(2, 3)),
    (C, "supervision.notice", {"dispatch_id": "c1", "colour": "red"}, utc(2, 5)),
    # D: 湖滨街道, hotline, open, green
    received(D, "hotline", "339901001003", utc(2, 4)),
    dispatched(D, "d1", "general.streetlight", "green", utc(2, 4)),
]


async def test_open_overdue_and_risk_per_town_and_county(pool):
    towns = domain.division_overview([dict(r) for r in await storage.division_overview(pool, "town")])
    assert towns == [
        {"code": "339901001", "open": 1, "overdue": 0, "high_risk": 0, "risk": "green"},  # A is closed
        {"code": "339901002", "open": 1, "overdue": 1, "high_risk": 1, "risk": "red"},
    ]  # B was refused: not open
    counties = domain.division_overview([dict(r) for r in await storage.division_overview(pool, "county")])
    assert counties == [{"code": "339901", "open": 2, "overdue": 1, "high_risk": 1, "risk": "red"}]
    assert await storage.division_overview(pool, "town", ["339902"]) == []
    mine = await storage.division_overview(pool, "town", ["339901001"])
    assert [(r["code"], r["open"]) for r in mine] == [("339901001", 1)]


async def test_received_and_closed_per_beijing_day_by_channel_and_category(pool):
    since, until = datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 3, 16, tzinfo=UTC)  # 1–3 Dec Beijing
    first, last = date(2026, 12, 1), date(2026, 12, 3)
    by_channel = domain.daily_series([dict(r) for r in await storage.daily_trend(pool, "channel", since, until)],
                                     first, last)
    assert by_channel == {"days": ["2026-12-01", "2026-12-02", "2026-12-03"],
                          "received": {"hotline": [1, 2, 0], "grid": [0, 1, 0]},
                          "closed": {"hotline": [0, 0, 1], "grid": [0, 1, 0]}}
    by_category = domain.daily_series([dict(r) for r in await storage.daily_trend(pool, "category", since, until)],
                                      first, last)
    assert by_category["received"] == {"public_security.violence.fight": [1, 1, 0], "general.streetlight": [0, 1, 0],
                                       "unknown": [0, 1, 0]}  # B never got a category
    assert by_category["closed"] == {"public_security.violence.fight": [0, 0, 1], "unknown": [0, 1, 0]}
    xishan = domain.daily_series([dict(r) for r in await storage.daily_trend(pool, "channel", since, until,
                                                                              ["339902"])], first, last)
    assert xishan["received"] == {"grid": [0, 1, 0]} and xishan["closed"] == {"grid": [0, 1, 0]}
    # a window that ends before 3 Dec (Beijing) leaves A's closure out
    early = await storage.daily_trend(pool, "channel", since, datetime(2026, 12, 2, 16, tzinfo=UTC))
    assert ("closed", "hotline") not in {(r["flow"], r["key"]) for r in early}
