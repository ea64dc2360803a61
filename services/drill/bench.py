"""`onewindow bench`: the whole system end to end beside the physical limits, in one run.

System: cases posted to intake over HTTP (loopback), at a fixed offered rate and then at saturation
(many concurrent clients); for each accepted case, intake→dispatch latency (the dispatch record's
Kafka timestamp minus the moment the request was sent) and intake→audit latency (when audit
recorded the case's `case.received`). Limits, same machine, same run: a raw aiokafka relay pipeline
of 4 hops (the hops a case makes: intake → router → dispatch, plus audit), a bare ASGI endpoint under
the same HTTP load generator, and PostgreSQL COPY. Peak resident memory per service process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.drill.stack import DrillStack, submission
from shared import devstack, topics

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
# The deployment's trace sampling (docker-compose.yml): a case's trace is kept whole for 10 % of cases.
SAMPLING = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


@dataclass
class Load:
    """What one load phase offered and got back."""

    sent_ms: dict[str, float] = field(default_factory=dict)  # case id -> wall-clock ms at send
    offered: int = 0
    accepted: int = 0
    errors: int = 0
    seconds: float = 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON: a load generator light enough not to be
    the bottleneck (a general-purpose client costs more CPU per request than the endpoints measured)."""

    def __init__(self, host: str, port: int, path: str, token: str) -> None:
        self.host, self.port, self.path, self.token = host, port, path, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.writer.write((f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
            self.writer = None


async def drive(url: str, token: str, run: str, *, rate: float | None, seconds: float, workers: int) -> Load:
    """POST cases for `seconds`: at `rate` per second (fixed offered load, spread over up to `workers`
    connections) or, without, as fast as `workers` concurrent connections can (saturation)."""
    load = Load()
    parts = urlsplit(url)
    pool = [Connection(parts.hostname, parts.port, parts.path, token) for _ in range(workers)]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for c in pool:
        free.put_nowait(c)
    counter = iter(range(10**9))
    start = time.monotonic()
    end = start + seconds

    async def one(i: int) -> None:
        conn = await free.get()
        load.offered += 1
        sent = time.time() * 1000
        try:
            status, answer = await conn.post(submission(i, run))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn.close()
            load.errors += 1
            return
        finally:
            free.put_nowait(conn)
        if status == 202:
            load.accepted += 1
            load.sent_ms[json.loads(answer)["case_id"]] = sent
        else:
            load.errors += 1

    if rate:
        tasks, n = [], 0
        while (now := time.monotonic()) < end:
            due = start + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(one(next(counter))))
            n += 1
        await asyncio.gather(*tasks)
    else:
        async def worker() -> None:
            while time.monotonic() < end:
                await one(next(counter))

        await asyncio.gather(*(worker() for _ in range(workers)))
    load.seconds = time.monotonic() - start
    for c in pool:
        c.close()
    return load


async def dispatch_times(bootstrap: str, keys: set[str], timeout: float) -> dict[str, int]:
    """Kafka timestamp (ms) of each case's first dispatch (or manual-triage decision)."""
    c = AIOKafkaConsumer(*topics.DISPATCH_TOPICS, topics.ROUTER_DECISIONS, bootstrap_servers=bootstrap,
                         group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await c.start()
    seen: dict[str, int] = {}
    wanted = {b"org.onewindow.case.dispatched.v1", b"org.onewindow.case.manual_triage_required.v1"}
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(keys) and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=300, max_records=5000)).values():
                for r in recs:
                    key = (r.key or b"").decode()
                    if key in keys and dict(r.headers).get("ce_type") in wanted:
                        seen[key] = min(seen.get(key, r.timestamp), r.timestamp)
    finally:
        await c.stop()
    return seen


async def audit_times(dsn: str, keys: set[str], timeout: float) -> dict[str, float]:
    """When audit recorded each case's `case.received` (ms)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            rows = await conn.fetch("SELECT case_id, extract(epoch FROM recorded_at) * 1000 AS at FROM audit.events"
                                    " WHERE type = 'org.onewindow.case.received.v1' AND case_id = ANY($1::text[])",
                                    list(keys))
            if len(rows) >= len(keys) or time.monotonic() > deadline:
                return {r["case_id"]: float(r["at"]) for r in rows}
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def latency(load: Load, arrived: dict[str, float]) -> dict:
    lat = [arrived[k] - load.sent_ms[k] for k in load.sent_ms if k in arrived]
    return {"p50_ms": statistics.median(lat) if lat else None, "p99_ms": pct(lat, 0.99), "arrived": len(lat)}


async def raw_relay_pipeline(bootstrap: str, records: int, hops: int = 4) -> dict:
    """The limit: `hops` raw aiokafka relays in a chain on the same broker, fed steadily by a separate
    producer process (bench/raw_producer.py, as fast as it can: its own rate is reported as the
    generator's ceiling). Throughput is read at the last hop in the steady middle of the run (10th to
    90th percentile of arrivals), so neither the ramp-up nor the tail flatters or spoils it."""
    names = [f"bench.hop{i}.{uuid.uuid4().hex[:6]}" for i in range(hops + 1)]
    await topics.ensure_topics(bootstrap, 3, names)
    relays = [subprocess.Popen([sys.executable, str(BENCH_DIR / "raw_relay.py"), bootstrap, names[i], names[i + 1],
                                f"bench-relay-{names[i]}"]) for i in range(hops)]
    try:
        await asyncio.sleep(3)  # every relay joined its group
        with tempfile.NamedTemporaryFile("r", suffix=".keys") as keys_file:
            feed = await asyncio.create_subprocess_exec(
                sys.executable, str(BENCH_DIR / "raw_producer.py"), bootstrap, names[0], str(records), keys_file.name,
                stdout=asyncio.subprocess.PIPE)
            out, _ = await feed.communicate()
            generator = json.loads(out)
            keys = {k.encode() for k in keys_file.read().split()}
        first = await _timestamps(bootstrap, names[0], keys, 60)
        last = await _timestamps(bootstrap, names[-1], keys, 180)
    finally:
        for r in relays:
            r.terminate()
            r.wait()
    lat = [last[k] - first[k] for k in last if k in first]
    arrivals = sorted(last.values())
    steady = 0.0
    if len(arrivals) >= 10:
        lo, hi = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
        steady = (len(arrivals) * 8 // 10) / ((hi - lo) / 1000) if hi > lo else 0.0
    return {"hops": hops, "records": records, "delivered": len(last), "per_s": steady,
            "broker_records_per_s": steady * (hops + 1),  # each record is produced once per topic
            "p50_ms": statistics.median(lat) if lat else None, "p99_ms": pct(lat, 0.99),
            "generator_per_s": generator["per_s"]}


async def records_on_broker(bootstrap: str) -> int:
    """How many records the broker holds on OneWindow's topics (the sum of their end offsets): read
    before and after a phase, the difference is what the phase's cases made the broker carry."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await c.start()
    try:
        names = [t for t in await c.topics() if not t.startswith("bench.")]
        parts = [TopicPartition(t, p) for t in names for p in c.partitions_for_topic(t) or ()]
        return sum((await c.end_offsets(parts)).values()) if parts else 0
    finally:
        await c.stop()


async def _timestamps(bootstrap: str, topic: str, keys: set[bytes], timeout: float) -> dict[bytes, int]:
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                         fetch_max_wait_ms=20)
    await c.start()
    seen: dict[bytes, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(keys) and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=300, max_records=5000)).values():
                for r in recs:
                    if r.key in keys:
                        seen.setdefault(r.key, r.timestamp)
    finally:
        await c.stop()
    return seen


async def bare_asgi(seconds: float, workers: int) -> dict:
    """The limit of an HTTP JSON endpoint under the same load generator."""
    port = devstack.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "bare_asgi:app",
                             "--port", str(port), "--log-level", "warning", "--no-access-log"])
    try:
        devstack.wait_for_port("127.0.0.1", port)
        load = await drive(f"http://127.0.0.1:{port}/v1/cases", "none", "bare", rate=None, seconds=seconds,
                           workers=workers)
    finally:
        proc.terminate()
        proc.wait()
    return {"per_s": load.accepted / load.seconds, "requests": load.accepted}


async def copy_limit(dsn: str, rows: int = 50_000) -> dict:
    """PostgreSQL COPY of audit-sized rows into an unindexed table: the write limit of the database."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TEMP TABLE copy_limit (case_id text, type text, data jsonb, at timestamptz)")
        data = '{"note": "民警已到现场处置，正在调查询问", "unit_id": "police-339901001"}'
        records = [(str(uuid.uuid4()), "org.onewindow.dispatch.progress.v1", data, None) for _ in range(rows)]
        t = time.perf_counter()
        for i in range(0, rows, 500):
            async with conn.transaction():
                await conn.copy_records_to_table("copy_limit", records=records[i:i + 500])
        return {"per_s": rows / (time.perf_counter() - t), "rows": rows}
    finally:
        await conn.close()


class MemoryWatch:
    """Peak resident memory of each service process, sampled every 200 ms."""

    def __init__(self, stack: DrillStack) -> None:
        self.stack, self.peak, self._stop = stack, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, p in self.stack.procs.items():
                try:
                    rss = psutil.Process(p.proc.pid).memory_info().rss
                except (psutil.Error, AttributeError):
                    continue
                self.peak[name] = max(self.peak.get(name, 0), rss)
            time.sleep(0.2)

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class CpuAccount:
    """CPU seconds (user + system) spent by each process of the stack: the four services, the broker
    and PostgreSQL (its postmaster and every backend). Read before and after a phase, the difference
    divided by the phase's cases is what a case costs each part — a figure that holds on a shared
    machine where throughput does not."""

    def __init__(self, stack: DrillStack) -> None:
        self.stack = stack

    def _parts(self) -> dict[str, list[psutil.Process]]:
        parts: dict[str, list[psutil.Process]] = {}
        for name, p in self.stack.procs.items():
            try:
                proc = psutil.Process(p.proc.pid)
                # a service's replicas ("router-2") and worker processes count as the service
                parts.setdefault(name.split("-")[0], []).extend([proc, *proc.children(recursive=True)])
            except (psutil.Error, AttributeError):
                continue
        if self.stack.broker.proc is not None:
            broker = psutil.Process(self.stack.broker.proc.pid)
            parts["broker"] = [broker, *broker.children(recursive=True)]
        pgdata = str(self.stack.pgdata)
        for proc in psutil.process_iter(["cmdline"]):
            if any(pgdata in arg for arg in proc.info["cmdline"] or ()):
                parts["postgres"] = [proc, *proc.children(recursive=True)]
                break
        return parts

    def read(self) -> dict[str, dict[int, float]]:
        """CPU seconds per part, per process id (a process may start or end between two reads)."""
        out: dict[str, dict[int, float]] = {}
        for name, procs in self._parts().items():
            for proc in procs:
                try:
                    t = proc.cpu_times()
                except psutil.Error:
                    continue
                out.setdefault(name, {})[proc.pid] = t.user + t.system
        return out

    @staticmethod
    def per_case_ms(before: dict, after: dict, cases: int) -> dict[str, float | None]:
        """CPU milliseconds per case of each part between two reads, and of the four services summed."""
        costs = {name: sum(after[name].get(pid, 0) - before.get(name, {}).get(pid, 0) for pid in after[name])
                 for name in after}
        per = {name: round(1000 * c / cases, 3) if cases else None for name, c in sorted(costs.items())}
        services = [per[s] for s in ("intake", "router", "mediation", "audit") if per.get(s) is not None]
        per["services_total"] = round(sum(services), 3) if services and cases else None
        return per


class Profiles:
    """py-spy flame graphs (SVG) of each service process while a phase runs: where its CPU goes."""

    def __init__(self, stack: DrillStack, out: Path | None, seconds: float) -> None:
        self.stack, self.out, self.seconds = stack, out, seconds
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Profiles":
        if self.out is None:
            return self
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out.mkdir(parents=True, exist_ok=True)
        for name, p in self.stack.procs.items():
            if p.proc is None:
                continue
            # --nonblocking: sampling must not pause the process it measures
            self._procs.append(subprocess.Popen(
                [spy, "record", "--pid", str(p.proc.pid), "--duration", str(int(self.seconds)), "--rate", "100",
                 "--nonblocking", "--subprocesses", "--format", "flamegraph", "--output", str(self.out / f"{name}.svg")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            try:
                proc.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                proc.terminate()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def run_phase(stack: DrillStack, run: str, rate: float | None, seconds: float, workers: int,
              profile: Path | None = None) -> dict:
    """One load phase on a running stack (fixed `rate`, or saturation without): what was offered and
    accepted, dispatch and audit latencies, the records the broker carried and CPU per case."""
    url = f"{stack.url('intake')}/v1/cases"
    cpu = CpuAccount(stack)
    bootstrap, dsn = stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"]
    # CPU from the first request until every case is dispatched and in audit: the whole of what the
    # cases of the phase cost (idle ticks while draining included)
    before, carried = cpu.read(), asyncio.run(records_on_broker(bootstrap))
    with Profiles(stack, profile, seconds):
        load = asyncio.run(drive(url, stack.clerk, run, rate=rate, seconds=seconds, workers=workers))
    keys = set(load.sent_ms)
    dispatched = asyncio.run(dispatch_times(bootstrap, keys, 120))
    audited = asyncio.run(audit_times(dsn, keys, 120))
    cost = CpuAccount.per_case_ms(before, cpu.read(), load.accepted)
    carried = asyncio.run(records_on_broker(bootstrap)) - carried
    done = [dispatched[k] for k in keys if k in dispatched]
    span = (max(done) - min(load.sent_ms.values())) / 1000 if done else float("inf")
    return {
        "offered": load.offered, "accepted": load.accepted, "errors": load.errors,
        "offered_per_s": load.offered / load.seconds, "accepted_per_s": load.accepted / load.seconds,
        "dispatched_per_s": len(done) / span if span else 0,
        # every record the broker carried for the phase's cases, on every topic
        "records_per_case": carried / load.accepted if load.accepted else None,
        "broker_records_per_s": (carried / load.accepted) * (len(done) / span) if load.accepted and span else 0,
        "intake_to_dispatch": latency(load, dispatched), "intake_to_audit": latency(load, audited),
        "cpu_ms_per_case": cost,
    }


def run_bench(rate: float, seconds: float, workers: int, relay_records: int, profile: Path | None = None,
              processes: tuple[int, ...] = (1,)) -> dict:
    """The whole run (bounded: two load phases of `seconds`, a relay of `relay_records`); with `profile`,
    a py-spy flame graph of each service at saturation is written into that folder. Each further count
    in `processes` runs the saturation phase again on a stack with that many processes per service."""
    # traces sampled as the deployment samples them (docker-compose.yml), unless the caller says otherwise
    for name, value in SAMPLING.items():
        os.environ.setdefault(name, value)
    first, *more = processes
    stack = DrillStack(simulator=False, replicas=first, intake_processes=first).start()
    run = uuid.uuid4().hex[:6]
    try:
        bootstrap, dsn = stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"]
        with MemoryWatch(stack) as memory:
            phases = {"fixed": run_phase(stack, f"{run}f", rate, seconds, workers),
                      "saturation": run_phase(stack, f"{run}s", None, seconds, workers, profile)}
        limits = {"raw_relay_4_hops": asyncio.run(raw_relay_pipeline(bootstrap, relay_records)),
                  "bare_asgi": asyncio.run(bare_asgi(seconds, workers)),
                  "postgres_copy": asyncio.run(copy_limit(dsn))}
    finally:
        stack.stop()
    scale_out = {first: phases["saturation"]}
    for n in more:
        stack = DrillStack(simulator=False, replicas=n, intake_processes=n).start()
        try:
            scale_out[n] = run_phase(stack, f"{run}p{n}", None, seconds, workers)
        finally:
            stack.stop()
    sat = phases["saturation"]
    return {
        "rate": rate, "seconds": seconds, "workers": workers, "phases": phases, "limits": limits,
        # saturation with 1, 2, ... processes per service (same machine, each on a fresh stack)
        "processes": {str(n): {"dispatched_per_s": p["dispatched_per_s"], "accepted_per_s": p["accepted_per_s"],
                               "intake_to_dispatch": p["intake_to_dispatch"], "cpu_ms_per_case": p["cpu_ms_per_case"]}
                      for n, p in scale_out.items()},
        "sampling": {name: os.environ[name] for name in SAMPLING},
        "ratios": {
            "end_to_end_vs_raw_relay": _ratio(sat["dispatched_per_s"], limits["raw_relay_4_hops"]["per_s"]),
            # the records the cases make the broker carry per second beside the relay's steady end-to-end
            # records/s (the measure) and beside the relay's own broker records/s (like for like)
            "case_records_vs_raw_relay": _ratio(sat["broker_records_per_s"], limits["raw_relay_4_hops"]["per_s"]),
            "case_records_vs_relay_broker_records": _ratio(sat["broker_records_per_s"],
                                                           limits["raw_relay_4_hops"]["broker_records_per_s"]),
            "intake_vs_bare_asgi": _ratio(sat["accepted_per_s"], limits["bare_asgi"]["per_s"]),
        },
        "peak_rss_mib": {k: round(v / 2**20, 1) for k, v in sorted(memory.peak.items())},
    }
