"""Audit benchmark: ingest rate against PostgreSQL COPY, and timeline latency over >= 1 M events.

    .venv/bin/python bench/audit_bench.py [--events 20000] [--stored 1000000]

1. Ingest: the audit write path (inbox, chain heads, hash chain, COPY into the append-only store, case
   summaries; in transactions of 500 events — what the consumer does per batch, without Kafka) versus a raw COPY of
   the same rows into an unindexed table of the same database, in the same run. Ratio goal >= 0.3.
2. Timeline: bulk-load `--stored` events (5 per case) into a fresh audit schema, then time the
   service's timeline query for 1000 random cases: p50/p99 (goal p99 <= 20 ms).
Uses DATABASE_URL or an embedded PostgreSQL; writes bench/results/audit-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg

from services.audit import handlers, storage
from services.audit.entry import MIGRATIONS
from shared import devstack
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchProgress
from shared.db import create_pool, migrate
from shared.messaging.consumer import BatchProcessor, Inbound

HERE = Path(__file__).parent


def inbound(n: int) -> list[Inbound]:
    cases = [uuid.uuid4() for _ in range(max(1, n // 5))]
    out = []
    for i in range(n):
        data = DispatchProgress(case_id=random.choice(cases), dispatch_id=uuid.uuid4(), unit_id="police-339901001",
                                note="民警已到现场处置，正在调查询问")
        ev = CloudEvent.of(data, source="/bench", event_id=str(uuid.uuid4()))
        out.append(Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=i), ev, None))
    return out


async def ingest(dsn: str, n: int) -> dict:
    schema = f"abench_{secrets.token_hex(3)}"
    await migrate(dsn, schema, MIGRATIONS)
    pool = await create_pool(dsn, schema, max_size=2)
    items = inbound(n)
    processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None, handle=handlers.record_events,
                               validate_contracts=False)
    t = time.perf_counter()
    for i in range(0, n, 500):
        await processor.apply(items[i:i + 500])
    service_s = time.perf_counter() - t
    rows = [(it.event.subject, 1, it.event.id, it.event.source, it.event.type, it.event.time, "feedback.police", 0,
             i, None, json.dumps(it.event.data, ensure_ascii=False), None, b"x" * 32) for i, it in enumerate(items)]
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw_copy (LIKE events INCLUDING DEFAULTS)")
        await conn.execute("ALTER TABLE raw_copy ALTER COLUMN id DROP NOT NULL")
        t = time.perf_counter()
        for i in range(0, n, 500):
            async with conn.transaction():
                await conn.copy_records_to_table("raw_copy", columns=storage.EVENT_COLUMNS, records=rows[i:i + 500])
        copy_s = time.perf_counter() - t
        stored = await conn.fetchval("SELECT count(*) FROM events")
    await pool.close()
    await drop_schema(dsn, schema)
    assert stored == n
    return {"events": n, "service_per_s": n / service_s, "copy_per_s": n / copy_s,
            "ratio": (n / service_s) / (n / copy_s)}


async def drop_schema(dsn: str, schema: str) -> None:
    """Leave the database as found: the benchmark's schemas hold a million rows."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


async def timeline(dsn: str, stored: int) -> dict:
    schema = f"abench_{secrets.token_hex(3)}"
    await migrate(dsn, schema, MIGRATIONS)
    pool = await create_pool(dsn, schema, max_size=2)
    cases = [str(uuid.uuid4()) for _ in range(stored // 5)]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")  # bulk load only
        load_t = time.perf_counter()
        for start in range(0, len(cases), 20_000):
            batch = []
            for c in cases[start:start + 20_000]:
                for seq in range(1, 6):
                    batch.append((c, seq, str(uuid.uuid4()), "/bench", "org.onewindow.dispatch.progress.v1",
                                  t0 + timedelta(seconds=seq), "feedback.police", 0, seq, None,
                                  '{"note": "进展"}', None, b"x" * 32))
            await conn.copy_records_to_table("events", columns=storage.EVENT_COLUMNS, records=batch)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        await conn.execute("ANALYZE events")
        load_s = time.perf_counter() - load_t
    sample = random.sample(cases, min(1000, len(cases)))
    lat = []
    for c in sample:
        t = time.perf_counter()
        records = await storage.timeline(pool, c)
        lat.append((time.perf_counter() - t) * 1000)
        assert len(records) == 5
    await pool.close()
    await drop_schema(dsn, schema)
    lat.sort()
    return {"stored": len(cases) * 5, "load_s": load_s, "p50_ms": statistics.median(lat), "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


async def run(args) -> dict:
    dsn = os.environ.get("DATABASE_URL") or devstack.embedded_postgres_dsn(
        Path(tempfile.mkdtemp(prefix="onewindow-bench-")) / "pgdata")
    return {"ingest": await ingest(dsn, args.events), "timeline": await timeline(dsn, args.stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events ingested (1000-200000)")
    parser.add_argument("--stored", type=int, default=1_000_000, help="events stored for the timeline (>= 1000)")
    args = parser.parse_args()
    if not (1000 <= args.events <= 200_000 and 1000 <= args.stored <= 5_000_000):
        parser.error("--events 1000-200000, --stored 1000-5000000")
    r = asyncio.run(run(args))
    i, t = r["ingest"], r["timeline"]
    print(f"\naudit ingest: {i['events']} events, batches of 500")
    print(f"  audit write path {i['service_per_s']:>10.0f} events/s")
    print(f"  raw COPY (limit) {i['copy_per_s']:>10.0f} events/s   ratio {i['ratio']:.2f} (goal >= 0.3)")
    print(f"audit timeline over {t['stored']} stored events (loaded in {t['load_s']:.0f} s), 1000 random cases:")
    print(f"  p50 {t['p50_ms']:.2f} ms   p99 {t['p99_ms']:.2f} ms (goal p99 <= 20 ms)")
    out = HERE / "results" / f"audit-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **r}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
