"""The drills: load a private stack, inject one fault while cases flow, then account for every case.

A case is *recorded* when the audit trace holds its whole loop (received → … → closed, 7 events),
*lost* when intake accepted it but its loop never completed, *duplicated* when any event of its loop
was recorded twice or one offer produced two cases. Offers are retried with the same Idempotency-Key
(as a real client does), so a refused or unanswered request is offered again, not lost.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

from aiokafka import AIOKafkaProducer

from services.drill.stack import LOOP, DrillStack
from shared import topics


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

    @property
    def passed(self) -> bool:
        return not self.claimed or (self.lost == 0 and self.duplicated == 0 and self.accepted == self.offered)


def kill(service: str) -> Callable[[DrillStack, random.Random], str]:
    def fault(stack: DrillStack, rng: random.Random) -> str:
        for _ in range(2):  # two kills at random moments while cases keep coming
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
    time.sleep(rng.uniform(0.5, 1.5))
    pid = stack.procs["router"].proc.pid
    os.kill(pid, signal.SIGSTOP)
    time.sleep(9)  # session timeout is 6 s in the drill stack
    os.kill(pid, signal.SIGCONT)
    return "router stopped 9 s (session timeout 6 s), then resumed"


def restart_postgres(stack: DrillStack, rng: random.Random) -> str:
    time.sleep(rng.uniform(0.5, 1.5))
    stack.restart_postgres(3)
    return "PostgreSQL stopped (immediate) for 3 s, started again"


def restart_broker(stack: DrillStack, rng: random.Random) -> str:
    time.sleep(rng.uniform(0.5, 1.5))
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

    time.sleep(rng.uniform(0.3, 1.0))
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


def run_drill(name: str, cases: int, seed: int, settle_seconds: float = 180) -> DrillResult:
    """Start a stack, offer `cases` while the fault happens, settle every case, account."""
    claimed, fault = DRILLS[name]
    rng = random.Random(seed)
    run = f"{name}-{secrets.token_hex(3)}"
    started = time.monotonic()
    stack = DrillStack().start()
    try:
        accepted: dict[int, str] = {}
        refusals: list[str] = []

        def offer() -> None:
            for i in range(cases):
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    case_id, why = stack.submit(i, run)
                    if case_id:
                        accepted[i] = case_id
                        break
                    refusals.append(why)
                    time.sleep(0.5)  # refused or unanswered: offer again with the same key
                time.sleep(0.05)

        feeder = threading.Thread(target=offer, daemon=True)
        feeder.start()
        note = fault(stack, rng)
        feeder.join()
        ids = sorted(set(accepted.values()))
        closed = settle(stack, ids, settle_seconds)
        rows = stack.sql(
            "SELECT case_id, type, count(*) AS n FROM audit.events WHERE case_id = ANY($1::text[])"
            " AND type = ANY($2::text[]) GROUP BY case_id, type", ids, LOOP)
        per_case: dict[str, dict[str, int]] = {}
        for r in rows:
            per_case.setdefault(r["case_id"], {})[r["type"]] = r["n"]
        recorded = sum(1 for c in ids if set(per_case.get(c, {})) == set(LOOP))
        duplicated_events = sum(n - 1 for types in per_case.values() for n in types.values())
        received = stack.sql("SELECT count(DISTINCT case_id) AS n FROM audit.events WHERE type = $1"
                             " AND data->>'description' LIKE '%' || $2 || '%'", LOOP[0], run)[0]["n"]
        extra_cases = max(0, received - len(ids))
        dead = stack.sql("SELECT count(*) AS n FROM audit.dead_letters")[0]["n"]
        lost_after: dict[str, int] = {}
        for c in ids:
            have = per_case.get(c, {})
            if set(have) != set(LOOP):
                last = max((LOOP.index(t) for t in have), default=-1)
                step = LOOP[last].removeprefix("org.onewindow.").removesuffix(".v1") if last >= 0 else "nothing"
                lost_after[step] = lost_after.get(step, 0) + 1
        return DrillResult(name, claimed, cases, len(ids), recorded, len(ids) - recorded,
                           duplicated_events + extra_cases, round(time.monotonic() - started, 1), dead,
                           f"{note}; {len(refusals)} offers retried; {closed} closed"
                           + (f"; last refusal: {refusals[-1]}" if len(accepted) < cases and refusals else "")
                           + (f"; lost after: {lost_after}" if lost_after else ""), lost_after or None)
    finally:
        stack.stop()


def settle(stack: DrillStack, ids: list[str], timeout: float) -> int:
    """Record the citizen's satisfied callback (回访) for each case once it is resolved; wait for closure."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    called: set[str] = set()
    while pending and time.monotonic() < deadline:
        closed = {r["case_id"] for r in stack.sql(
            "SELECT DISTINCT case_id FROM audit.events WHERE case_id = ANY($1::text[]) AND type = $2",
            list(pending), LOOP[-1])}
        pending -= closed
        for case_id in sorted(pending - called):
            status = stack.callback(case_id)
            if status == 200:
                called.add(case_id)
            elif status not in (404, 409, 0, 503):
                called.add(case_id)  # refused for another reason: counted lost if it never closes
        time.sleep(1)
    return len(ids) - len(pending)


def as_json(results: list[DrillResult]) -> str:
    return json.dumps([{**asdict(r), "passed": r.passed} for r in results], ensure_ascii=False, indent=2)
