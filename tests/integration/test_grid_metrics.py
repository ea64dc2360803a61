"""Audit's metrics by grid (网格事件及时处置率) and by channel on a real PostgreSQL: the same figures
as by unit, counted over the dispatches that have a grid or a channel."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.audit import domain, handlers, storage
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound

P = "org.onewindow."
GRID, UNIT = "339901001001-01", "grid-339901001001-01"


@pytest.fixture
async def pool(database_url: str):
    schema = f"gm_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def t(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _item(case_id: str, kind: str, data: dict, at: datetime, topic: str) -> Inbound:
    ev = CloudEvent(id=str(uuid.uuid4()), source="/test", type=P + kind, subject=case_id, time=at,
                    data={"case_id": case_id, **data})
    return Inbound(SimpleNamespace(topic=topic, partition=0, offset=secrets.randbelow(10**6)), ev, None)


def _case(channel: str, grid: str | None, unit: str, day: int, resolved_after: timedelta) -> list[Inbound]:
    case_id, dispatch_id = str(uuid.uuid4()), str(uuid.uuid4())
    location = {"division_code": "339901001001", **({"grid_id": grid} if grid else {})}
    at = t(day)
    return [
        _item(case_id, "case.received.v1", {"channel": channel, "location": location}, at, "intake.cases"),
        _item(case_id, "case.dispatched.v1", {"dispatch_id": dispatch_id, "unit_id": unit, "location": location,
                                              "acknowledge_by": (at + timedelta(hours=1)).isoformat(),
                                              "resolve_by": (at + timedelta(days=1)).isoformat()}, at, "dispatch.grid"),
        _item(case_id, "dispatch.accepted.v1", {"dispatch_id": dispatch_id}, at + timedelta(minutes=10), "feedback.grid"),
        _item(case_id, "dispatch.resolved.v1", {"dispatch_id": dispatch_id}, at + resolved_after, "feedback.grid"),
    ]


async def test_metrics_by_grid_and_by_channel_are_the_figures_by_unit(pool):
    items = [*_case("grid", GRID, UNIT, 2, timedelta(hours=5)), *_case("grid", GRID, UNIT, 3, timedelta(days=3)),
             *_case("hotline", None, "police-339901001", 4, timedelta(hours=2)),
             *_case("window", "339901001002-01", "police-339901001", 5, timedelta(days=2))]
    async with pool.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, items)

    async def figures(by: str) -> dict[str, dict]:
        rows = domain.figures([dict(r) for r in await storage.metrics(pool, by, "month", None, None)])
        return {f["key"]: {k: v for k, v in f.items() if k != "key"} for f in rows}

    by_grid, by_unit, by_channel = await figures("grid"), await figures("unit"), await figures("channel")
    assert set(by_grid) == {GRID, "339901001002-01"}  # the hotline case has no grid: not counted by grid
    assert by_grid[GRID] == by_unit[UNIT]
    assert (by_grid[GRID]["dispatches"], by_grid[GRID]["handled_on_time_rate"]) == (2, 0.5)
    assert by_grid["339901001002-01"]["handled_on_time_rate"] == 0.0
    assert {k: (f["dispatches"], f["handled_on_time_rate"]) for k, f in by_channel.items()} == {
        "grid": (2, 0.5), "hotline": (1, 1.0), "window": (1, 0.0)}
    assert sum(f["dispatches"] for f in by_channel.values()) == sum(f["dispatches"] for f in by_unit.values())
    outside = await storage.metrics(pool, "grid", "month", None, None, ["339902"])
    assert outside == []
