"""Replay benchmark: replay copy and audit rebuild read rates, beside a raw aiokafka consumer reading
the same topic in the same run.

    .venv/bin/python bench/replay_bench.py [--events 100000]

Produces N CloudEvents (`dispatch.progress`, ~0.6 KB, 4 partitions) to a bench topic, then times:
1. raw: one aiokafka consumer (no group) reading the topic from the beginning to its end — the limit;
2. `replay copy` of the topic to a JSON-lines file (read, filter, encode, write);
3. `replay copy` to a sandbox topic (read and re-publish);
4. `replay rebuild-audit` of the topic into a fresh audit schema (read, decode, inbox, chain, COPY).
Prints events/s and each ratio to the raw read (goal >= 0.5 for the reads), and this process's CPU per
record (the PostgreSQL server's part of the rebuild is not counted); writes
bench/results/replay-<time>.json. Starts an embedded Tansu and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL are set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.replay.copy import Filters, copy
from services.replay.rebuild import rebuild_audit
from shared import devstack
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchProgress
from shared.messaging.log import Range, end_offsets, reader

HERE = Path(__file__).parent
TOPIC = f"bench.replay.{secrets.token_hex(3)}"


async def produce(bootstrap: str, n: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, 4, 1)])
    await admin.close()
    cases = [uuid.uuid4() for _ in range(max(1, n // 10))]
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=1 << 20)
    await p.start()
    try:
        futures = []
        for i in range(n):
            data = DispatchProgress(case_id=cases[i % len(cases)], dispatch_id=uuid.uuid4(),
                                    unit_id="police-339901001", note=f"民警已到现场处置，正在调查询问（{i}）")
            ev = CloudEvent.of(data, source="/bench", event_id=str(uuid.uuid4()))
            futures.append(await p.send(TOPIC, ev.value(), key=ev.key(), headers=ev.headers()))
        await asyncio.gather(*futures)
    finally:
        await p.stop()


async def raw_read(bootstrap: str, n: int) -> tuple[float, float]:
    """Seconds (wall, this process's CPU) for one plain consumer to connect, find the end and read every
    record of the topic (timed like the replay commands: from the client's start)."""
    t, cpu = time.perf_counter(), time.process_time()
    c = reader(bootstrap)
    await c.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        await end_offsets(c, tps)
        c.assign(tps)
        c.seek_to_beginning(*tps)
        seen = 0
        while seen < n:
            seen += sum(len(v) for v in (await c.getmany(timeout_ms=1000, max_records=5000)).values())
        return time.perf_counter() - t, time.process_time() - cpu
    finally:
        await c.stop()


async def timed(coro) -> tuple[tuple[float, float], object]:
    t, cpu = time.perf_counter(), time.process_time()
    result = await coro
    return (time.perf_counter() - t, time.process_time() - cpu), result


async def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="onewindow-bench-"))
    bootstrap, dsn, broker = devstack.local_broker_and_database(work)
    schema = f"rebuild_bench_{secrets.token_hex(3)}"
    try:
        await produce(bootstrap, args.events)
        n = args.events
        raw_s = await raw_read(bootstrap, n)
        file_s, r_file = await timed(copy(bootstrap, Range([TOPIC]), Filters(), to_file=work / "copy.jsonl"))
        topic_s, r_topic = await timed(copy(bootstrap, Range([TOPIC]), Filters(), to_prefix="sandbox."))
        rebuild_s, r_rebuild = await timed(rebuild_audit(bootstrap, dsn, schema, [TOPIC]))
        assert r_file.written == n and r_topic.written == n and r_rebuild.recorded == n, (r_file, r_topic, r_rebuild)
    finally:
        if broker:
            broker.stop()
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    raw = n / raw_s[0]
    # throughput and its ratio to the raw read's (the goal's measure), and this process's CPU per record
    row = lambda s: {"per_s": n / s[0], "ratio": (n / s[0]) / raw, "cpu_us_per_record": s[1] / n * 1e6,  # noqa: E731
                     "cpu_ratio": raw_s[1] / s[1]}
    return {"events": n, "raw_read_per_s": raw, "raw_read_cpu_us_per_record": raw_s[1] / n * 1e6,
            "copy_to_file": row(file_s), "copy_to_sandbox": row(topic_s), "rebuild_audit": row(rebuild_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events produced (1000-1000000)")
    parser.add_argument("--results", type=Path, help="write the results here (default bench/results/replay-<time>.json)")
    args = parser.parse_args()
    if not 1000 <= args.events <= 1_000_000:
        parser.error("--events 1000-1000000")
    r = asyncio.run(run(args))
    print(f"\nreplay over {r['events']} events (4 partitions, ~0.6 KB each)")
    print(f"  raw aiokafka read (limit)  {r['raw_read_per_s']:>9.0f} events/s"
          f"                {r['raw_read_cpu_us_per_record']:6.1f} µs CPU/record")
    for name, label in (("copy_to_file", "replay copy → file"), ("copy_to_sandbox", "replay copy → sandbox"),
                        ("rebuild_audit", "rebuild audit → PG")):
        x = r[name]
        print(f"  {label:<26} {x['per_s']:>9.0f} events/s   ratio {x['ratio']:.2f}   {x['cpu_us_per_record']:6.1f} µs"
              f" CPU/record (CPU ratio {x['cpu_ratio']:.2f})")
    print("  goal: ratio >= 0.5 for the reads")
    out = args.results or HERE / "results" / f"replay-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **r}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
