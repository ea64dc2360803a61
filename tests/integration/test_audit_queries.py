"""Audit queries on a real PostgreSQL against hand-computed expectations: every event type recorded,
case summaries (holder, status, overdue, escalated) and each search filter, the command-centre metrics
and rankings, and the backfill of summaries reproducing what live ingestion folded."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.audit import domain, handlers, storage
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.contracts import EVENT_MODELS
from shared.contracts.asyncapi import example
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound

P = "org.onewindow."


@pytest.fixture
async def pool(database_url: str):
    schema = f"aq_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def _inbound(case_id: str, event_type: str, data: dict, at: datetime, topic: str = "router.decisions") -> Inbound:
    ev = CloudEvent(id=str(uuid.uuid4()), source="/test", type=event_type, subject=case_id, time=at,
                    data={"case_id": case_id, **data},
                    traceparent=f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
    return Inbound(SimpleNamespace(topic=topic, partition=1, offset=secrets.randbelow(10**6)), ev, None)


async def _record(pool, items: list[Inbound]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, items)


async def test_every_event_type_is_recorded_with_its_kafka_coordinates_and_trace(pool):
    items = []
    for event_type, model in EVENT_MODELS.items():
        ev = CloudEvent.of(model.model_validate(example(event_type)), source="/test", event_id=str(uuid.uuid4()))
        ev = ev.with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        items.append(Inbound(SimpleNamespace(topic="t", partition=2, offset=len(items)), ev, None))
    await _record(pool, items[:7])
    await _record(pool, items[7:])
    rows = await pool.fetch("SELECT type, event_id, topic, partition, kafka_offset, trace_id FROM events ORDER BY id")
    assert [r["type"] for r in rows] == list(EVENT_MODELS)
    assert [r["event_id"] for r in rows] == [i.event.id for i in items]
    assert {(r["topic"], r["partition"]) for r in rows} == {("t", 2)}
    assert [r["kafka_offset"] for r in rows] == list(range(len(items)))
    assert {r["trace_id"] for r in rows} == {"0af7651916cd43dd8448eb211c80319c"}
    for case_id in {i.event.subject for i in items}:
        assert domain.first_broken(await storage.chain(pool, case_id)) is None


# --- one quarter of hand-made history ------------------------------------------------------------------

def t(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def dispatched(dispatch_id: str, unit: str, division: str, at: datetime, *, role: str = "lead",
               resolve_in: timedelta = timedelta(days=1)) -> tuple:
    return (P + "case.dispatched.v1", {"dispatch_id": dispatch_id, "unit_id": unit, "role": role,
                                       "location": {"division_code": division},
                                       "acknowledge_by": (at + timedelta(minutes=30)).isoformat(),
                                       "resolve_by": (at + resolve_in).isoformat()}, at, "dispatch.police")


def fb(kind: str, dispatch_id: str, at: datetime, **extra) -> tuple:
    return (P + f"dispatch.{kind}.v1", {"dispatch_id": dispatch_id, **extra}, at, "feedback.police")


def ev(kind: str, at: datetime, **data) -> tuple:
    return (P + kind + ".v1", data, at, "router.decisions")


A, B, C, E = (str(uuid.uuid4()) for _ in range(4))
HISTORY = {
    A: [ev("case.received", t(7, 1, 9), case_number="339901-20260701-00001",
           location={"division_code": "339901001002"}),
        ev("case.routed", t(7, 1, 9, 1), category="public_security.violence", risk_colour="yellow"),
        dispatched("D1", "police-339901001", "339901001002", t(7, 1)),
        fb("accepted", "D1", t(7, 1, 10, 20)), fb("resolved", "D1", t(7, 1, 20)),
        ev("case.callback_recorded", t(7, 3), satisfied=True), ev("case.closed", t(7, 3, 11), dispatch_id="D1")],
    B: [ev("case.received", t(7, 5, 9), case_number="339901-20260705-00001",
           location={"division_code": "339901001003"}),
        ev("case.routed", t(7, 5, 9, 1), category="public_security.violence", risk_colour="green"),
        dispatched("D2", "police-339901001", "339901001003", t(7, 5)),
        fb("accepted", "D2", t(7, 5, 11)),
        ev("supervision.notice", t(7, 6, 10), dispatch_id="D2", colour="red", clock="resolve"),
        ev("case.escalated", t(7, 6, 10, 5), dispatch_id="D2", to_unit_id="police-339901"),
        fb("resolved", "D2", t(7, 7)),
        ev("case.callback_recorded", t(7, 8), satisfied=False), ev("case.reopened", t(7, 8, 11)),
        ev("case.callback_recorded", t(7, 10), satisfied=True)],
    C: [ev("case.received", t(7, 2, 9), case_number="339901-20260702-00001",
           location={"division_code": "339901002001"}),
        ev("case.routed", t(7, 2, 9, 1), category="civil.dispute", risk_colour="green"),
        dispatched("D3", "police-339901002", "339901002001", t(7, 2)),
        fb("returned", "D3", t(7, 2, 10, 10), reason="不属本单位"),
        dispatched("D4", "mediation-339901002001", "339901002001", t(7, 2, 11), resolve_in=timedelta(days=18)),
        dispatched("D5", "petition-339901", "339901002001", t(7, 2, 11), role="assist"),
        fb("accepted", "D4", t(7, 2, 11, 10)),
        ev("mediation.transitioned", t(7, 9), origin="dispatch", committee_id="mediation-339901002001",
           to_status="agreement_reached"),
        fb("resolved", "D4", t(7, 10))],
    E: [ev("case.received", t(8, 3, 9), case_number="339902-20260803-00001",
           location={"division_code": "339902001001"}),
        ev("case.routed", t(8, 3, 9, 1), category="public_security.violence", risk_colour="red"),
        dispatched("D6", "police-339902001", "339902001001", t(8, 3), resolve_in=timedelta(days=400)),
        ev("supervision.notice", t(8, 3, 10, 31), dispatch_id="D6", colour="red", clock="acknowledge")],
}


async def _history(pool) -> None:
    # interleaved across cases and in several batches, as partitions deliver them
    items = [_inbound(case, *step) for case, steps in HISTORY.items() for step in steps]
    for i in range(0, len(items), 5):
        await _record(pool, items[i:i + 5])


async def test_case_summaries_and_every_search_filter(pool):
    await _history(pool)

    async def ids(**filters) -> set[str]:
        return {r["case_id"] for r in await storage.search(pool, **filters)}

    summaries = {r["case_id"]: storage.summary_of(r) for r in await storage.search(pool, limit=10)}
    assert (summaries[A].status, summaries[A].holder_unit_id) == ("closed", None)
    assert (summaries[B].status, summaries[B].holder_unit_id, summaries[B].escalations) == (
        "reopened", None, 1)  # back with the router until its new dispatch (none in this history)
    assert (summaries[C].status, summaries[C].holder_unit_id, summaries[C].returns, summaries[C].units) == (
        "resolved", "mediation-339901002001", 1, ["mediation-339901002001", "petition-339901", "police-339901002"])
    assert (summaries[E].status, summaries[E].holder_unit_id, summaries[E].holder_since, summaries[E].supervision,
            summaries[E].overdue) == ("dispatched", "police-339902001", t(8, 3), "red", True)

    assert await ids(overdue=True) == {E}
    assert await ids(escalated=True) == {B}
    assert await ids(supervision="red") == {E}
    assert await ids(status="closed") == {A}
    assert await ids(holder_unit_id="police-339902001") == {E}
    assert await ids(unit_id="petition-339901") == {C}
    assert await ids(unit_id="police-339901001") == {A, B}
    assert await ids(division="339901002") == {C}
    assert await ids(division="339901") == {A, B, C}
    assert await ids(category="public_security.violence") == {A, B, E}
    assert await ids(risk_colour="red") == {E}
    assert await ids(since=t(8, 1)) == {E}
    assert await ids(until=t(8, 1)) == {A, B, C}
    assert await ids(since=t(7, 2, 0), until=t(7, 6, 0)) == {B, C}
    assert await ids(case_number="339901-20260701-00001") == {A}
    assert await ids(jurisdiction=["339902"]) == {E}
    assert await ids(jurisdiction=["339901001", "339902"]) == {A, B, E}
    assert await ids(status="closed", division="339902") == set()
    assert [r["case_id"] for r in await storage.search(pool, limit=2)] == [E, B], "latest activity first"


async def test_metrics_and_rankings_match_hand_computed_figures(pool):
    await _history(pool)

    async def figures(by: str, period: str = "quarter") -> dict[str, dict]:
        rows = domain.figures([dict(r) for r in await storage.metrics(pool, by, period, None, None)])
        return {(f["key"], f["period"]): f for f in rows}

    q3 = "2026-07-01"
    unit = await figures("unit")
    def pick(f, *keys):
        return tuple(f[k] for k in keys)
    keys = ("dispatches", "acknowledged_on_time_rate", "handled_on_time_rate", "satisfaction_rate",
            "mediation_success_rate", "returns", "escalations")
    assert pick(unit["police-339901001", q3], *keys) == (2, 0.5, 0.5, 0.667, None, 0, 1)
    assert pick(unit["police-339901002", q3], *keys) == (1, 0.0, 0.0, None, None, 1, 0)
    assert pick(unit["mediation-339901002001", q3], *keys) == (1, 1.0, 1.0, None, 1.0, 0, 0)
    assert pick(unit["petition-339901", q3], *keys) == (1, 0.0, 0.0, None, None, 0, 0)
    assert pick(unit["police-339902001", q3], *keys) == (1, 0.0, None, None, None, 0, 0)  # not yet due

    town = await figures("town")
    assert pick(town["339901001", q3], *keys) == (2, 0.5, 0.5, 0.667, None, 0, 1)
    assert pick(town["339901002", q3], *keys) == (3, 0.333, 0.333, None, 1.0, 1, 0)
    county = await figures("county")
    assert pick(county["339901", q3], *keys) == (5, 0.4, 0.4, 0.667, 1.0, 1, 1)
    month = await figures("county", "month")
    assert month["339901", "2026-07-01"]["dispatches"] == 5 and month["339902", "2026-08-01"]["dispatches"] == 1

    ranking = domain.ranking(list(unit.values()))
    assert [(r["rank"], r["key"]) for r in ranking] == [
        (1, "mediation-339901002001"), (2, "police-339901001"), (3, "petition-339901"), (4, "police-339901002")]
    in_july = await storage.metrics(pool, "unit", "quarter", t(7, 1, 0), t(7, 2, 0))
    assert {r["key"] for r in in_july} == {"police-339901001"}, "since/until bound the dispatches counted"


async def test_backfill_rebuilds_the_summaries_ingestion_folded(pool):
    await _history(pool)
    before = {r["case_id"]: dict(r) for r in await pool.fetch("SELECT * FROM case_summaries")}
    async with pool.acquire() as conn:
        assert await handlers.backfill_summaries(conn) == 0, "summaries exist: nothing to do"
        await conn.execute("DELETE FROM case_summaries")
        assert await handlers.backfill_summaries(conn, batch=7) == 4
    after = {r["case_id"]: dict(r) for r in await pool.fetch("SELECT * FROM case_summaries")}
    assert after == before
