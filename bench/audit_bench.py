"""Audit benchmark: ingest rate against PostgreSQL COPY, and timeline latency over >= 1 M events.

    .venv/bin/python bench/audit_bench.py [--events 20000] [--stored 1000000]

1. Ingest: the audit write path (inbox, chain heads, hash chain, COPY into the append-only store, case
   summaries; in transactions of 500 events — what the consumer does per batch, without Kafka) versus a raw COPY of
   the same rows into an unindexed table of the same database, in the same run. Ratio goal >= 0.3. Then the
   same in batches of --small-batch (5): what a quiet hour costs per event. Each with the CPU per event of this
   process and of the PostgreSQL server (when it runs on this machine).
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
import psutil

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


class Cpu:
    """CPU seconds used so far by this process and, when it runs on this machine (an embedded one, or
    one at localhost), by the PostgreSQL server (the postmaster and every process under it)."""

    def __init__(self, backend_pid: int) -> None:
        try:
            self.server = psutil.Process(backend_pid).parent()
        except (psutil.Error, ValueError):
            self.server = None

    def _server(self) -> float | None:
        if self.server is None:
            return None
        total = 0.0
        for p in [self.server, *self.server.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def now(self) -> tuple[float, float | None]:
        return time.process_time(), self._server()


def _phase(n: int, wall: float, cpu0: tuple, cpu1: tuple) -> dict:
    client = (cpu1[0] - cpu0[0]) / n * 1e6
    server = (cpu1[1] - cpu0[1]) / n * 1e6 if cpu0[1] is not None else None
    return {"per_s": n / wall, "client_cpu_us_per_event": client, "server_cpu_us_per_event": server}


async def ingest(dsn: str, n: int, batch: int) -> dict:
    """The audit write path and a raw COPY of the same rows, both in transactions of `batch` events."""
    schema = f"abench_{secrets.token_hex(3)}"
    await migrate(dsn, schema, MIGRATIONS)
    pool = await create_pool(dsn, schema, max_size=1)
    items = inbound(n)
    processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None, handle=handlers.record_events,
                               validate_contracts=False)
    async with pool.acquire() as conn:
        cpu = Cpu(await conn.fetchval("SELECT pg_backend_pid()"))
    await processor.apply(inbound(batch))  # warm: statements prepared, caches filled
    t, c0 = time.perf_counter(), cpu.now()
    for i in range(0, n, batch):
        await processor.apply(items[i:i + batch])
    service = _phase(n, time.perf_counter() - t, c0, cpu.now())
    rows = [(it.event.subject, 1, it.event.id, it.event.source, it.event.type, it.event.time, "feedback.police", 0,
             i, None, json.dumps(it.event.data, ensure_ascii=False), None, b"x" * 32) for i, it in enumerate(items)]
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw_copy (LIKE events INCLUDING DEFAULTS)")
        await conn.execute("ALTER TABLE raw_copy ALTER COLUMN id DROP NOT NULL")
        t, c0 = time.perf_counter(), cpu.now()
        for i in range(0, n, batch):
            async with conn.transaction():
                await conn.copy_records_to_table("raw_copy", columns=storage.EVENT_COLUMNS, records=rows[i:i + batch])
        copy = _phase(n, time.perf_counter() - t, c0, cpu.now())
        stored = await conn.fetchval("SELECT count(*) FROM events")
    await pool.close()
    await drop_schema(dsn, schema)
    assert stored == n + batch
    both = lambda p: p["client_cpu_us_per_event"] + (p["server_cpu_us_per_event"] or 0)  # noqa: E731
    return {"events": n, "batch": batch, "service": service, "copy": copy,
            "ratio": service["per_s"] / copy["per_s"],  # throughput, the goal's measure
            "cpu_ratio": both(copy) / both(service)}


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
    small = await ingest(dsn, max(args.small_batch, args.events // 10 // args.small_batch * args.small_batch),
                         args.small_batch)
    return {"ingest": await ingest(dsn, args.events, 500), "ingest_small_batches": small,
            "timeline": await timeline(dsn, args.stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events ingested (1000-200000)")
    parser.add_argument("--stored", type=int, default=1_000_000, help="events stored for the timeline (>= 1000)")
    parser.add_argument("--small-batch", type=int, default=5,
                        help="also ingest a tenth of --events in batches this small (a quiet hour's batches)")
    parser.add_argument("--results", type=Path, help="write the results here (default bench/results/audit-<time>.json)")
    args = parser.parse_args()
    if not (1000 <= args.events <= 200_000 and 1000 <= args.stored <= 5_000_000 and 1 <= args.small_batch <= 100):
        parser.error("--events 1000-200000, --stored 1000-5000000, --small-batch 1-100")
    r = asyncio.run(run(args))
    t = r["timeline"]
    for i in (r["ingest"], r["ingest_small_batches"]):
        s, c = i["service"], i["copy"]
        server = lambda p: f"{p['server_cpu_us_per_event']:6.1f}" if p["server_cpu_us_per_event"] is not None else "     ?"  # noqa: E731
        print(f"\naudit ingest: {i['events']} events, batches of {i['batch']}        events/s   CPU µs/event: client  server")
        print(f"  audit write path                   {s['per_s']:>10.0f}                {s['client_cpu_us_per_event']:6.1f}  {server(s)}")
        print(f"  raw COPY (limit)                   {c['per_s']:>10.0f}                {c['client_cpu_us_per_event']:6.1f}  {server(c)}")
        print(f"  ratio {i['ratio']:.2f} (goal >= 0.3 at batches of 500); CPU ratio {i['cpu_ratio']:.2f}")
    print(f"audit timeline over {t['stored']} stored events (loaded in {t['load_s']:.0f} s), 1000 random cases:")
    print(f"  p50 {t['p50_ms']:.2f} ms   p99 {t['p99_ms']:.2f} ms (goal p99 <= 20 ms)")
    out = args.results or HERE / "results" / f"audit-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **r}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
