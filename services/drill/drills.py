"""The drills: load a private stack, inject one fault while cases flow, then account for every case.

A load generator offers new cases at a chosen rate (open loop: a slow or absent answer does not slow
the offers) and, concurrently, takes each case the department resolved through its callback (回访) to
closure; the fault strikes at a seeded moment while the offers are still coming. A case is
*recorded* when the audit trace holds its whole loop (received → … → closed, 7 events), *lost* when
intake accepted it but its loop never completed, *duplicated* when any event of its loop was
recorded twice or one offer produced two cases. Offers are retried with the same Idempotency-Key
(as a real client does), so a refused or unanswered request is offered again, not lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import secrets
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

import asyncpg
from aiokafka import AIOKafkaProducer

from services.drill.bench import Connection
from services.drill.stack import LOOP, DrillStack, submission
from shared import topics

DISPATCHED, RESOLVED, CLOSED = LOOP[2], LOOP[4], LOOP[-1]
OFFER_PATIENCE = 120  # seconds a client keeps offering one case again (same key) before giving up
REQUEST_TIMEOUT = 10  # seconds before an unanswered request counts as unanswered
KEEP_ALIVE = 4  # seconds an idle connection is reused (uvicorn closes one idle for 5 s)


@dataclass
class DrillResult:
    """One drill's account."""

    drill: str
    claimed: bool  # does the design claim to survive this fault with nothing lost or duplicated?
    offered: int
    accepted: int
    recorded: int
    lost: int
    duplicated: int
    seconds: float
    dead_letters: int = 0  # records consumers set aside (poison), as audit recorded them
    note: str = ""
    lost_after: dict | None = None  # for lost cases: the last step of the loop audit holds -> cases
    rate: float = 0.0  # the offered rate asked for, new cases/s
    offered_per_s: float = 0.0  # new cases offered per second, as achieved (first offers only)
    accepted_per_s: float = 0.0  # cases accepted per second, from the first offer to the last acceptance
    requests: int = 0  # requests to intake, retries included
    load_seconds: float = 0.0  # from the first offer to the last new case offered
    fault_window: tuple[float, float] | None = None  # when the fault began and ended, seconds after the first offer
    offered_during_fault: int = 0  # new cases offered between the fault's beginning and end
    recovery_seconds: float | None = None  # fault's end → every case offered before it dispatched (in audit)
    batches: dict = field(default_factory=dict)  # per consumer group: the partitions its batches spanned
    observed: dict = field(default_factory=dict)  # what the fault itself saw (e.g. uncommitted records midway)
    refusals: dict = field(default_factory=dict)  # refused or unanswered offers: count and a sample answer

    @property
    def passed(self) -> bool:
        return not self.claimed or (self.lost == 0 and self.duplicated == 0 and self.accepted == self.offered)


def kill(service: str) -> Callable[[DrillStack, random.Random], str]:
    def fault(stack: DrillStack, rng: random.Random) -> str:
        for n in range(2):  # two kills, the second at a random moment after the first restart
            if n:
                time.sleep(rng.uniform(0.5, 2.0))
            stack.procs[service].kill()
            time.sleep(rng.uniform(0.2, 1.0))
            stack.procs[service].start()
            stack.procs[service].wait_ready(90)
        return f"kill -9 {service} twice, restarted"
    return fault


def pause_router(stack: DrillStack, rng: random.Random) -> str:
    """A consumer too slow to heartbeat: SIGSTOP the router past its session timeout, then SIGCONT.
    The group evicts it; on waking it rejoins (a rebalance) and carries on."""
    pid = stack.procs["router"].proc.pid
    os.kill(pid, signal.SIGSTOP)
    time.sleep(9)  # session timeout is 6 s in the drill stack
    os.kill(pid, signal.SIGCONT)
    return "router stopped 9 s (session timeout 6 s), then resumed"


def restart_postgres(stack: DrillStack, rng: random.Random) -> str:
    """Every consumer's batch in flight fails (an outage: sought back to the earliest record of each of
    its partitions, read again, fails again until PostgreSQL is back); intake refuses. Midway, what
    each group has read but not committed — what its failing batches hold — is taken from the broker."""
    stack.pg_ctl("-m", "immediate", "stop")
    time.sleep(1.5)
    stack.observed["uncommitted_during_outage"] = asyncio.run(uncommitted(stack.env["KAFKA_BOOTSTRAP_SERVERS"]))
    time.sleep(1.5)
    stack.pg.ensure_postgres_running()
    return "PostgreSQL stopped (immediate) for 3 s, started again"


async def uncommitted(bootstrap: str) -> dict[str, dict]:
    """Per consumer group of the services: the records past its committed offsets (records, partitions,
    topics). A group re-reads them all, up to 500 records, in the batch it retries after a failure."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    groups = {c.group: c.topics for party in topics.SERVICES.values() for c in party.consumers}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await reader.start()
    try:
        tps = [TopicPartition(t, p) for t in sorted({t for ts in groups.values() for t in ts})
               for p in sorted(reader.partitions_for_topic(t) or ())]
        ends = await reader.end_offsets(tps)
        out = {}
        for group, names in sorted(groups.items()):
            mine = [tp for tp in tps if tp.topic in names]
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            behind = {tp: ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp] for tp in mine}
            behind = {tp: n for tp, n in behind.items() if n > 0}
            out[group] = {"records": sum(behind.values()), "partitions": len(behind),
                          "topics": len({tp.topic for tp in behind})}
        return out
    finally:
        await reader.stop()
        await admin.close()


def restart_broker(stack: DrillStack, rng: random.Random) -> str:
    stack.restart_broker(2)
    return "Tansu stopped for 2 s and started empty"


POISON = [b"not json", b'{"case_id": "x"}', b"\xff\xfe", b""]


def poison(stack: DrillStack, rng: random.Random) -> str:
    """Records no consumer can apply, on every topic a service consumes."""
    import asyncio

    consumed = [topics.SUBMISSIONS, *topics.CASE_TOPICS, topics.DEAD_LETTER]

    async def send() -> int:
        p = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"])
        await p.start()
        n = 0
        try:
            for t in consumed:
                for body in POISON:
                    headers = [("ce_specversion", b"1.0"), ("ce_id", secrets.token_hex(8).encode()),
                               ("ce_source", b"/drill"), ("ce_type", b"org.onewindow.case.received.v1"),
                               ("ce_time", b"2026-11-23T09:00:00+00:00"), ("ce_subject", b"poison")]
                    await p.send_and_wait(t, body, key=b"poison", headers=headers if body else [])
                    n += 1
        finally:
            await p.stop()
        return n

    return f"{asyncio.run(send())} poison records on {len(consumed)} topics"


DRILLS: dict[str, tuple[bool, Callable[[DrillStack, random.Random], str]]] = {
    "kill-intake": (True, kill("intake")),
    "kill-router": (True, kill("router")),
    "kill-mediation": (True, kill("mediation")),
    "kill-audit": (True, kill("audit")),
    "pause-router": (True, pause_router),
    "restart-postgres": (True, restart_postgres),
    "poison": (True, poison),
    # Tansu keeps nothing: the outboxes publish the last hour again, inboxes drop what was applied.
    "restart-broker": (True, restart_broker),
}


class Client(Connection):
    """bench's keep-alive HTTP/1.1 connection (light enough not to be the bottleneck), with a path and
    extra headers per request."""

    async def request(self, path: str, payload: dict, headers: dict[str, str]) -> tuple[int, bytes, float | None]:
        """(status, body, Retry-After in seconds if the answer has one)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(payload, ensure_ascii=False).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write((f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
                           f"{extra}Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                          + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, close, retry_after = int(head[9:12]), 0, False, None
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name.lower() == b"retry-after" and value.strip().isdigit():
                retry_after = float(value)
        body = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, body, retry_after


class Pool:
    """Keep-alive connections to one service, as many as requests in flight: an offer never waits for
    a free connection, so the offered rate holds while the service is slow or away."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token
        self.free: list[tuple[Client, float]] = []  # idle connections, the last used last

    async def post(self, path: str, payload: dict,
                   headers: dict[str, str] | None = None) -> tuple[int, str, float | None]:
        """(status, body, Retry-After) — status 0 and the error's name when no answer came."""
        now = time.monotonic()
        while self.free:
            conn, idle_since = self.free.pop()
            if now - idle_since < KEEP_ALIVE:
                break
            conn.close()  # the server may be closing it: a new one rather than a request lost on it
        else:
            conn = Client(self.host, self.port, "", self.token)
        try:
            status, body, retry_after = await asyncio.wait_for(conn.request(path, payload, headers or {}),
                                                               REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError) as exc:
            conn.close()
            return 0, type(exc).__name__, None
        if status >= 500:
            conn.close()  # the server may drop the connection after an error: do not reuse it
        else:
            self.free.append((conn, time.monotonic()))
        return status, body.decode(errors="replace"), retry_after

    def close(self) -> None:
        for conn, _ in self.free:
            conn.close()


@dataclass
class Flow:
    """The load of one drill: what was offered when, what was accepted, what closed (wall-clock times)."""

    cases: int
    rate: float
    run: str
    started: float = 0.0
    offered_at: dict[int, float] = field(default_factory=dict)
    accepted: dict[int, str] = field(default_factory=dict)
    accepted_at: dict[int, float] = field(default_factory=dict)
    requests: int = 0
    refusals: Counter = field(default_factory=Counter)  # refused or unanswered offers, by status or error
    refusal_samples: dict[str, str] = field(default_factory=dict)  # the first answer of each refusing status
    offers_done: bool = False
    closed: set[str] = field(default_factory=set)
    callbacks: Counter = field(default_factory=Counter)  # callback answers by status
    ready: threading.Event = field(default_factory=threading.Event)
    t0: float = 0.0  # monotonic time of the first offer
    jitter: random.Random = field(default_factory=lambda: random.Random(0))

    async def offer(self, intake: Pool, i: int) -> None:
        """Offer case i until intake accepts it, again with the same key after a refusal or no answer:
        as a client does, after the Retry-After of the answer, else after 0.5 s doubling up to 4 s,
        each wait jittered (±50 %) so that refused clients do not come back in step."""
        self.offered_at[i] = time.time()
        deadline = time.monotonic() + OFFER_PATIENCE
        for attempt in itertools.count():
            self.requests += 1
            status, body, retry_after = await intake.post("/v1/cases", submission(i, self.run),
                                                          {"Idempotency-Key": f"{self.run}-{i:06d}"})
            if status == 202:
                self.accepted[i] = json.loads(body)["case_id"]
                self.accepted_at[i] = time.time()
                return
            why = f"HTTP {status}" if status else body
            self.refusals[why] += 1
            if status:
                self.refusal_samples.setdefault(why, body[:300])
            if time.monotonic() > deadline:
                return
            await asyncio.sleep((retry_after or min(4.0, 0.5 * 2 ** attempt)) * self.jitter.uniform(0.5, 1.5))

    async def drive(self, stack: DrillStack, fault_done: threading.Event, settle_seconds: float) -> None:
        """Offer `cases` at `rate`; meanwhile, and afterwards until every accepted case closed (or
        `settle_seconds` after both the offers and the fault ended), record the callbacks."""
        intake = Pool(stack.url("intake"), stack.clerk)
        router = Pool(stack.url("router"), stack.operator)
        settler = asyncio.create_task(self.settle(stack, router, fault_done, settle_seconds))
        self.t0, self.started = time.monotonic(), time.time()
        self.ready.set()
        offers = []
        try:
            for i in range(self.cases):
                due = self.t0 + i / self.rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                offers.append(asyncio.create_task(self.offer(intake, i)))
            await asyncio.gather(*offers)
            self.offers_done = True
            await settler
        finally:
            settler.cancel()
            intake.close()
            router.close()

    async def settle(self, stack: DrillStack, router: Pool, fault_done: threading.Event, timeout: float) -> None:
        """Every second: which accepted cases audit holds as resolved or closed; record the citizen's
        satisfied callback (回访) for the resolved ones (again next time if the router refused it)."""
        deadline: float | None = None
        called: set[str] = set()
        limit = asyncio.Semaphore(16)

        async def callback(case_id: str) -> None:
            async with limit:
                status, _, _ = await router.post(f"/v1/cases/{case_id}/callback", {"satisfied": True})
            self.callbacks[status] += 1
            if status == 200:
                called.add(case_id)

        while True:
            pending = set(self.accepted.values()) - self.closed
            if self.offers_done and fault_done.is_set():
                deadline = deadline or time.monotonic() + timeout
                if not pending or time.monotonic() > deadline:
                    return
            if pending:
                try:
                    conn = await asyncpg.connect(stack.env["DATABASE_URL"], timeout=5)
                    try:
                        rows = await conn.fetch("SELECT DISTINCT case_id, type FROM audit.events WHERE case_id = ANY($1::text[])"
                                                " AND type = ANY($2::text[])", list(pending), [RESOLVED, CLOSED])
                    finally:
                        await conn.close()
                except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    rows = []  # PostgreSQL is away (the drill's fault): look again in a second
                self.closed |= {r["case_id"] for r in rows if r["type"] == CLOSED}
                resolved = {r["case_id"] for r in rows if r["type"] == RESOLVED} - self.closed - called
                await asyncio.gather(*(callback(c) for c in sorted(resolved)))
            await asyncio.sleep(1)


def run_drill(name: str, cases: int, seed: int, rate: float = 5.0, settle_seconds: float = 180) -> DrillResult:
    """Start a stack; offer `cases` at `rate` per second; strike with the fault at a seeded moment
    between 20 % and 40 % of the load (cases in flight, more still coming); settle every case; account."""
    claimed, fault = DRILLS[name]
    rng = random.Random(seed)
    run = f"{name}-{secrets.token_hex(3)}"
    started = time.monotonic()
    stack = DrillStack().start()
    try:
        flow = Flow(cases, rate, run, jitter=random.Random(seed))
        fault_done = threading.Event()
        failure: list[BaseException] = []

        def load() -> None:
            try:
                asyncio.run(flow.drive(stack, fault_done, settle_seconds))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the drill's thread
                failure.append(exc)
                flow.ready.set()

        feeder = threading.Thread(target=load, daemon=True)
        feeder.start()
        flow.ready.wait()
        strike = rng.uniform(0.2, 0.4) * (cases - 1) / rate
        if (wait := flow.t0 + strike - time.monotonic()) > 0:
            time.sleep(wait)
        fault_began = time.time()
        try:
            note = fault(stack, rng)
        finally:
            fault_ended = time.time()
            fault_done.set()
        feeder.join()
        if failure:
            raise failure[0]
        return account(name, claimed, stack, flow, (fault_began, fault_ended), note, time.monotonic() - started)
    finally:
        stack.stop()


def account(name: str, claimed: bool, stack: DrillStack, flow: Flow, fault: tuple[float, float], note: str,
            seconds: float) -> DrillResult:
    """Count every case in the audit trace; the load's rates, the fault's moment, recovery, batches."""
    ids = sorted(set(flow.accepted.values()))
    rows = stack.sql(
        "SELECT case_id, type, count(*) AS n FROM audit.events WHERE case_id = ANY($1::text[])"
        " AND type = ANY($2::text[]) GROUP BY case_id, type", ids, LOOP)
    per_case: dict[str, dict[str, int]] = {}
    for r in rows:
        per_case.setdefault(r["case_id"], {})[r["type"]] = r["n"]
    recorded = sum(1 for c in ids if set(per_case.get(c, {})) == set(LOOP))
    duplicated_events = sum(n - 1 for types in per_case.values() for n in types.values())
    received = stack.sql("SELECT count(DISTINCT case_id) AS n FROM audit.events WHERE type = $1"
                         " AND data->>'description' LIKE '%' || $2 || '%'", LOOP[0], flow.run)[0]["n"]
    extra_cases = max(0, received - len(ids))
    dead = stack.sql("SELECT count(*) AS n FROM audit.dead_letters")[0]["n"]
    lost_after: dict[str, int] = {}
    for c in ids:
        have = per_case.get(c, {})
        if set(have) != set(LOOP):
            last = max((LOOP.index(t) for t in have), default=-1)
            step = LOOP[last].removeprefix("org.onewindow.").removesuffix(".v1") if last >= 0 else "nothing"
            lost_after[step] = lost_after.get(step, 0) + 1
    began, ended = fault
    first = sorted(flow.offered_at.values())
    span = first[-1] - first[0] if len(first) > 1 else 0
    done = max(flow.accepted_at.values(), default=flow.started)
    # recovery: from the fault's end until every case a client had offered before it was dispatched
    before = [i for i, at in flow.offered_at.items() if at <= ended]
    recovery = None
    if before and all(i in flow.accepted for i in before):
        r = stack.sql("SELECT count(*) AS n, max(at) AS at FROM (SELECT min(extract(epoch FROM recorded_at)) AS at"
                      " FROM audit.events WHERE case_id = ANY($1::text[]) AND type = $2 GROUP BY case_id) d",
                      sorted({flow.accepted[i] for i in before}), DISPATCHED)[0]
        if r["n"] == len({flow.accepted[i] for i in before}):  # else some are lost: no recovery
            recovery = round(max(0.0, float(r["at"]) - ended), 1)
    batches = batch_spans(stack, began)
    refused = sum(flow.refusals.values())
    return DrillResult(
        name, claimed, flow.cases, len(ids), recorded, len(ids) - recorded, duplicated_events + extra_cases,
        round(seconds, 1), dead,
        f"{note}; {refused} offers retried"
        + (f" ({', '.join(f'{k} ×{v}' for k, v in flow.refusals.most_common(3))})" if refused else "")
        + f"; {len(flow.closed)} closed"
        + (f"; lost after: {lost_after}" if lost_after else ""),
        lost_after or None,
        rate=flow.rate,
        offered_per_s=round((len(first) - 1) / span, 1) if span else 0.0,
        accepted_per_s=round(len(ids) / (done - flow.started), 1) if done > flow.started else 0.0,
        requests=flow.requests,
        load_seconds=round(span, 1),
        fault_window=(round(began - flow.started, 1), round(ended - flow.started, 1)),
        offered_during_fault=sum(1 for at in first if began <= at <= ended),
        recovery_seconds=recovery,
        batches=batches,
        observed=stack.observed,
        refusals={why: {"count": n, "sample": flow.refusal_samples.get(why)} for why, n in flow.refusals.most_common()},
    )


def batch_spans(stack: DrillStack, struck: float) -> dict:
    """How many partitions the consumers' batches spanned, per consumer group. A batch is applied in one
    transaction, whose inbox rows share `processed_at` (the transaction's start); audit holds the
    topic and partition each of those events came from. For each group: batches, records, how many
    batches held records from two partitions or more, the most partitions in one batch, and the first
    batch whose transaction began after the fault struck (for the PostgreSQL drill, where none can begin
    while it is down: the batch that had kept failing, read again once it was back)."""
    schemas = [r["table_schema"] for r in stack.sql(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'inbox' ORDER BY 1")]
    spans: dict[tuple[str, float], set[tuple[str, int]]] = {}
    sizes: Counter = Counter()
    for schema in schemas:
        for r in stack.sql(
                f'SELECT split_part(i.event_key, \' \', 1) AS grp, extract(epoch FROM i.processed_at) AS at,'
                f' e.topic, e.partition FROM "{schema}".inbox i JOIN audit.events e'
                f" ON substr(i.event_key, strpos(i.event_key, ' ') + 1) = e.topic || ' ' || e.source || ' ' || e.event_id"):
            key = (r["grp"], float(r["at"]))
            spans.setdefault(key, set()).add((r["topic"], r["partition"]))
            sizes[key] += 1
    out: dict[str, dict] = {}
    for (group, at), parts in sorted(spans.items()):
        g = out.setdefault(group, {"batches": 0, "records": 0, "several_partitions": 0, "most_partitions": 0,
                                   "first_after_strike": None})
        g["batches"] += 1
        g["records"] += sizes[(group, at)]
        g["several_partitions"] += len(parts) > 1
        g["most_partitions"] = max(g["most_partitions"], len(parts))
        if at >= struck and g["first_after_strike"] is None:
            g["first_after_strike"] = {"records": sizes[(group, at)], "partitions": len(parts),
                                      "topics": len({t for t, _ in parts})}
    return out


def as_json(results: list[DrillResult]) -> str:
    return json.dumps([{**asdict(r), "passed": r.passed} for r in results], ensure_ascii=False, indent=2)
