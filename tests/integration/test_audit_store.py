"""The audit store on a real PostgreSQL: append-only for everyone, a service role that may only read
and append, duplicates recorded once, signed checkpoints, and a row edited behind the service's back
caught by the verifier (API function and `onewindow audit verify`)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from types import SimpleNamespace

import asyncpg
import pytest

from services.audit import handlers
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchProgress
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound

KEY = b"test-key"


@pytest.fixture
async def store(database_url: str):
    schema = f"atest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield schema, pool
    await pool.close()


def _events(case_id: uuid.UUID, n: int) -> list[Inbound]:
    out = []
    for i in range(n):
        data = DispatchProgress(case_id=case_id, dispatch_id=uuid.uuid4(), unit_id="police-339901001", note=f"进展{i}")
        ev = CloudEvent.of(data, source="/test", event_id=f"{case_id}-{i}")
        out.append(Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=i), ev, None))
    return out


async def _record(pool, items):
    async with pool.acquire() as conn, conn.transaction():
        await handlers.record_events(conn, items)


async def test_tampering_is_caught_and_the_store_refuses_changes(store, database_url):
    schema, pool = store
    case_a, case_b = uuid.uuid4(), uuid.uuid4()
    await _record(pool, _events(case_a, 4) + _events(case_b, 3))
    async with pool.acquire() as conn, conn.transaction():
        assert await handlers.take_checkpoint(conn, KEY, "t") == {
            "cases": 2, "events": 7, "up_to_id": await conn.fetchval("SELECT max(id) FROM events"), "seq": 1}
        assert await handlers.take_checkpoint(conn, KEY, "t") is None  # nothing new
        assert (await handlers.verify(conn, KEY))["intact"]

    # append-only: the trigger refuses UPDATE and DELETE, whoever asks
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE events SET data = '{}' WHERE case_id = $1", str(case_a))
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM events")
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            assert not await conn.fetchval("SELECT has_table_privilege('onewindow_audit_service', $1, $2)",
                                           f"{schema}.events", privilege)
        assert await conn.fetchval("SELECT has_table_privilege('onewindow_audit_service', $1, 'INSERT')",
                                   f"{schema}.events")

    # a superuser edits a record behind the service's back (trigger disabled)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("UPDATE events SET data = jsonb_set(data, '{note}', '\"篡改\"') WHERE case_id = $1"
                           " AND seq = 3", str(case_a))
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        result = await handlers.verify(conn, KEY)
    assert result["broken"] == [{"case_id": str(case_a), "first_broken_seq": 3}]
    assert not result["intact"]

    env = {**os.environ, "DATABASE_URL": database_url, "ONEWINDOW_AUDIT_SIGNING_KEY": KEY.decode()}
    cli = subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify", "--schema", schema],
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and '"first_broken_seq": 3' in cli.stdout
    one = subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify", "--schema", schema,
                          "--case", str(case_b)], env=env, capture_output=True, text=True, timeout=60)
    assert one.returncode == 0, one.stdout + one.stderr


async def test_a_rehashed_forgery_breaks_the_signed_checkpoint(store):
    _schema, pool = store
    case = uuid.uuid4()
    await _record(pool, _events(case, 3))
    async with pool.acquire() as conn, conn.transaction():
        await handlers.take_checkpoint(conn, KEY, "t")
    # a forger rewrites the last record AND recomputes its hash: the chain alone looks intact
    async with pool.acquire() as conn:
        from services.audit import domain, storage

        row = await conn.fetchrow("SELECT * FROM events WHERE case_id = $1 AND seq = 3", str(case))
        forged = storage.record_of(row)
        forged = domain.TraceRecord(**{**forged.__dict__, "data": {**forged.data, "note": "伪造"}, "hashed_text": None})
        text = forged.data_json()
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("UPDATE events SET data = $2::jsonb, data_text = $4, hash = $3 WHERE id = $1", row["id"],
                           text, domain.chain_hash(row["prev_hash"], forged, text), text)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        result = await handlers.verify(conn, KEY)
    assert result["broken"] == [] and result["checkpoints_failing"], "the checkpoint no longer matches"


async def test_duplicate_deliveries_are_recorded_once(store):
    _schema, pool = store
    case = uuid.uuid4()
    items = _events(case, 2)
    from shared.messaging.consumer import BatchProcessor

    processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None, handle=handlers.record_events,
                               validate_contracts=False)
    await processor.apply(items)
    await processor.apply(items + _events(case, 2))  # redelivered, and the same events again
    assert await pool.fetchval("SELECT count(*) FROM events WHERE case_id = $1", str(case)) == 2


async def test_an_id_pre_claimed_on_a_department_topic_keeps_neither_event_out_of_the_trace(store):
    """A department copies the source and (derivable) id of a router escalation onto its feedback
    topic before the router publishes it: the trace keeps the forgery and the real event."""
    _schema, pool = store
    from shared.contracts import CaseEscalated
    from shared.messaging.consumer import BatchProcessor

    case = uuid.uuid4()
    data = CaseEscalated(case_id=case, dispatch_id=uuid.uuid4(), from_unit_id="police-339901001",
                         to_unit_id="police-339901", to_level="county", reason="resolve deadline passed")
    ev = CloudEvent.of(data, source="/onewindow/router", event_id="derived-escalation-id")
    forged = Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=7), ev, None)
    real = Inbound(SimpleNamespace(topic="router.decisions", partition=0, offset=9), ev, None)
    processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None, handle=handlers.record_events,
                               validate_contracts=False, enforce_publishers=False)
    await processor.apply([forged])
    await processor.apply([real])
    await processor.apply([real])  # a redelivery is still recorded once
    rows = await pool.fetch("SELECT topic FROM events WHERE case_id = $1 ORDER BY seq", str(case))
    assert [r["topic"] for r in rows] == ["feedback.police", "router.decisions"]


async def test_a_backdated_acceptance_counts_when_the_broker_took_it(store):
    """A unit that signs for a case late cannot claim an earlier time (ce_time): the on-time figure
    counts the broker's timestamp of the record."""
    _schema, pool = store
    from datetime import UTC, datetime, timedelta

    from services.audit import storage
    from shared.contracts import CaseDispatched, DispatchAccepted, Location

    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    case, dispatch = uuid.uuid4(), uuid.uuid4()
    dispatched = CloudEvent.of(CaseDispatched(
        case_id=case, case_number="N1", dispatch_id=dispatch, unit_kind="police", unit_id="police-339901001",
        unit_name="派出所", level="town", category="public_security.violence", title="t", description="d",
        location=Location(division_code="339901001001"), acknowledge_by=t0 + timedelta(hours=1),
        resolve_by=t0 + timedelta(days=1)), source="/onewindow/router", event_id=str(uuid.uuid4()), time=t0)
    late = CloudEvent.of(DispatchAccepted(case_id=case, dispatch_id=dispatch, unit_id="police-339901001"),
                         source="/departments/police/110", event_id=str(uuid.uuid4()),
                         time=t0 + timedelta(minutes=10))  # the claim: ten minutes after dispatch
    await _record(pool, [
        Inbound(SimpleNamespace(topic="dispatch.police", partition=0, offset=1, timestamp=ms(t0)), dispatched, None),
        Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=1,
                                timestamp=ms(t0 + timedelta(hours=3))), late, None),  # the broker: three hours
    ])
    rows = await storage.metrics(pool, "unit", "month", None, None)
    row = next(r for r in rows if r["key"] == "police-339901001")
    assert (row["acknowledged_on_time"], row["acknowledge_due"]) == (0, 1)
