"""Router benchmark: cases decided and dispatched per second and latency, beside a raw aiokafka relay.

    .venv/bin/python bench/router_bench.py [--cases 5000]

Injects N `case.received` events on `intake.cases` while the router runs and measures, from the
Kafka timestamps, how fast dispatches appear on `dispatch.*` (throughput) and how long each case
took (p50/p99). The same N records go through a raw aiokafka relay (bench/raw_relay.py) on the same
broker in the same run: the physical limit of one hop. Prints the ratio; writes
bench/results/router-<time>.json. Starts what it needs (embedded Tansu and PostgreSQL unless
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set); bounded in records and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import devstack, topics
from shared.cloudevents import CloudEvent, derive_id, utcnow
from shared.contracts import CaseReceived, Location
from shared.identity import LocalIssuer

HERE = Path(__file__).parent
TEXTS = ["小区门口有人打架斗殴", "邻居家漏水引发邻里纠纷", "对方拒不履行判决申请强制执行", "反映征地拆迁补偿问题",
         "两车追尾发生交通事故", "公司拖欠工资三个月", "路灯坏了好几天"]
VILLAGES = [f"33990{c}{t:03d}{v:03d}" for c in (1, 2) for t in range(1, 5) for v in range(1, 5)]


def received_records(n: int) -> list[tuple[bytes, bytes, list]]:
    out = []
    for i in range(n):
        case = CaseReceived(case_id=uuid.uuid4(), case_number=f"339901-20261123-{i:05d}", channel="hotline",
                            title=TEXTS[i % len(TEXTS)], description=TEXTS[i % len(TEXTS)] + f"（{i}）",
                            location=Location(division_code=VILLAGES[i % len(VILLAGES)]), received_at=utcnow())
        ev = CloudEvent.of(case, source="/bench", event_id=derive_id("bench", case.case_id))
        out.append((ev.key(), ev.value(), ev.headers()))
    return out


async def produce(bootstrap: str, topic: str, records) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await p.start()
    try:
        futures = [await p.send(topic, v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await p.stop()


async def collect(bootstrap: str, in_topics: list[str], out_topics: list[str], keys: set[bytes],
                  timeout: float) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Kafka timestamps (ms) of each key's first record on the input and output topics."""

    async def read(topic_list: list[str], until: int) -> dict[bytes, int]:
        c = AIOKafkaConsumer(*topic_list, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", fetch_max_wait_ms=20)
        await c.start()
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(seen) < until and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=200, max_records=5000)).values():
                    for r in recs:
                        if r.key in keys and r.key not in seen:
                            seen[r.key] = r.timestamp
        finally:
            await c.stop()
        return seen

    return await read(in_topics, len(keys)), await read(out_topics, len(keys))


def figures(name: str, ins: dict, outs: dict, n: int) -> dict:
    lat = sorted(outs[k] - ins[k] for k in outs if k in ins)
    span_s = (max(outs.values()) - min(ins.values())) / 1000 if outs else float("inf")
    return {"name": name, "records": n, "delivered": len(outs), "per_s": len(outs) / span_s if span_s else 0,
            "p50_ms": statistics.median(lat) if lat else None,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None}


async def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="onewindow-bench-"))
    bootstrap, base, broker = devstack.local_broker_and_database(work)
    dsn = await devstack.create_database(base, "onewindow_bench")
    await topics.ensure_topics(bootstrap, 3, topics.ALL_TOPICS + ["bench.raw-in", "bench.raw-out"])
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": dsn, "ONEWINDOW_LOG_LEVEL": "WARNING",
           **LocalIssuer(work / "issuer").env()}
    port = devstack.free_port()
    router = devstack.ServiceProcess("router", ["run", "router", "--port", str(port)], env, port,
                                     work / "router.log").start()
    relay = subprocess.Popen([sys.executable, str(HERE / "raw_relay.py"), bootstrap, "bench.raw-in",
                              "bench.raw-out", "bench-relay"])
    try:
        router.wait_ready(60)
        await asyncio.sleep(2)  # both consumers joined their groups
        raw = received_records(args.cases)
        await produce(bootstrap, "bench.raw-in", raw)
        ins, outs = await collect(bootstrap, ["bench.raw-in"], ["bench.raw-out"], {k for k, _, _ in raw}, 120)
        relay_fig = figures("raw aiokafka relay (1 hop)", ins, outs, args.cases)

        cases = received_records(args.cases)
        routable = {k for k, _, _ in cases}
        await produce(bootstrap, topics.CASES_RECEIVED, cases)
        ins, outs = await collect(bootstrap, [topics.CASES_RECEIVED],
                                  [*topics.DISPATCH_TOPICS, topics.ROUTER_DECISIONS], routable, 300)
        router_fig = figures("router: received → decided", ins, outs, args.cases)
    finally:
        router.stop()
        relay.terminate()
        relay.wait()
        if broker:
            broker.stop()
    return {"relay": relay_fig, "router": router_fig, "ratio": router_fig["per_s"] / relay_fig["per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="records injected (100-100000)")
    args = parser.parse_args()
    if not 100 <= args.cases <= 100_000:
        parser.error("--cases must be 100-100000")
    result = asyncio.run(run(args))
    print(f"\nrouter benchmark: {args.cases} cases, loopback, Tansu + PostgreSQL on this machine")
    print(f"{'pipeline':<32}{'delivered':>10}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for f in (result["relay"], result["router"]):
        print(f"{f['name']:<32}{f['delivered']:>10}{f['per_s']:>10.0f}{f['p50_ms'] or 0:>10.0f}{f['p99_ms'] or 0:>10.0f}")
    print(f"ratio router / raw relay: {result['ratio']:.2f} (goal >= 0.5)")
    out = HERE / "results" / f"router-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cases": args.cases, **result}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
