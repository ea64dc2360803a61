"""Audit's two ways of writing a batch on a real PostgreSQL — one statement for a small batch, COPY and
an upsert for a large one — store the same records and summaries, those the pure fold computes, and
both verify."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from services.audit import domain, handlers, storage
from services.audit.entry import MIGRATIONS
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound
from tests.unit.test_audit_ingest import _batch

KEY = b"test-key"


@pytest.fixture
async def two_stores(database_url: str):
    pools = []
    for _ in range(2):
        schema = f"atest_{secrets.token_hex(3)}"
        await migrate(database_url, schema, MIGRATIONS)
        pools.append(await create_pool(database_url, schema))
    yield pools
    for pool in pools:
        await pool.close()


def _events(copies: int) -> list[Inbound]:
    """`copies` times the pure test's batch (several cases, a risk, actors, odd numbers), each copy
    about other cases."""
    out = []
    for k in range(copies):
        for item in _batch():
            ev = replace(item.event, subject=f"{item.event.subject}-{k}", id=f"{item.event.id}-{k}")
            if "into_case_id" in ev.data:
                ev = replace(ev, data={**ev.data, "into_case_id": f"{ev.data['into_case_id']}-{k}"})
            out.append(Inbound(item.record, ev, None))
    return out


async def _stored(pool) -> tuple[list[dict], list[dict]]:
    async with pool.acquire() as conn:
        events = await conn.fetch("SELECT case_id, seq, event_id, source, type, time, topic, partition, kafka_offset,"
                                  " trace_id, data, data_text, prev_hash, hash, broker_time, actor FROM events"
                                  " ORDER BY case_id, seq")
        summaries = await conn.fetch("SELECT * FROM case_summaries ORDER BY case_id")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            assert (await handlers.verify(conn, KEY))["findings"] == []
    return [dict(r) for r in events], [dict(r) for r in summaries]


async def test_one_statement_and_copy_store_the_same_trace_and_summaries(two_stores):
    items = _events(3)
    assert len(items) > storage.ONE_STATEMENT_MAX >= 10
    large, small = two_stores
    async with large.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, items)  # COPY, then the upsert
    for chunk in (items[:1], items[1:10], items[10:20], items[20:]):  # one statement each
        assert len(chunk) <= storage.ONE_STATEMENT_MAX
        async with small.acquire() as conn, conn.transaction():
            await handlers.record_events(conn, chunk)

    events, summaries = await _stored(large)
    assert (events, summaries) == await _stored(small)
    assert len(events) == len(items) and len(summaries) == 9, "three cases per copy; risks have none"

    rows, changed = handlers.trace_batch({}, {}, items)  # what the pure fold computes
    assert [(e["case_id"], e["seq"], e["hash"], e["prev_hash"], e["data_text"], e["actor"]) for e in events] == sorted(
        (r.case_id, r.seq, r.hash, r.prev_hash, r.data_text, r.actor) for r in rows)
    assert [storage.summary_of(s) for s in summaries] == sorted(changed.values(), key=lambda s: s.case_id)
    c1 = next(s for s in summaries if s["case_id"] == "c1-0")
    assert (c1["events"], c1["units"], c1["supervision"], c1["escalations"]) == (5, ["police-339901001"], "red", 1)


async def test_units_with_quotes_and_backslashes_survive_the_upsert(two_stores):
    pool = two_stores[0]
    odd = domain.CaseSummary(case_id="c-odd", units=['a"b', "c\\d", "e,f", "{g}", "NULL", " h "])
    async with pool.acquire() as conn:
        await storage.save_summaries(conn, [odd])
        back = await storage.load_summaries(conn, ["c-odd"])
    assert back["c-odd"].units == odd.units
