"""Intake's handlers: groups of submissions (HTTP ones gathered by the GroupWriter, Kafka ones in
batches) and the status projection. Thin: load what the domain needs, let it decide, save."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Callable

import asyncpg
from pydantic import ValidationError

from services.intake import domain, storage
from shared import topics
from shared.cloudevents import Actor, derive_id, utcnow
from shared.contracts import SubmissionRejected
from shared.contracts.submissions import SUBMISSION_TYPE
from shared.divisions import DivisionDirectory
from shared.grids import GridDirectory
from shared.messaging.consumer import BatchHandler, Inbound, dead_letter_record
from shared.messaging.outbox import Emitter, Outgoing, add_records_to_outbox
from shared.messaging.producer import Record
from shared.refusals import Overloaded


async def accept_submissions(conn: asyncpg.Connection, group: list[domain.Pending], now: datetime,
                             policy: domain.DuplicatePolicy) -> list[domain.Outcome]:
    """Write a group of submissions in the caller's transaction; one outcome per submission.

    Retries get the earlier outcome; repeats of an open case are linked to it and announced as
    `case.duplicate_reported`; the rest become cases (`case.received`), numbered in one go.
    """
    earlier = await storage.earlier_submissions(conn, [p.idempotency_key for p in group if p.idempotency_key])
    divisions = sorted({p.submission.location.division_code for p in group})
    await storage.lock_divisions(conn, divisions)
    last_numbers, candidates = await storage.numbers_and_open_cases(
        conn, domain.numbering_prefixes(group, earlier, now), divisions, now - policy.window, policy.candidates)
    plan = domain.plan_group(group, earlier, candidates, last_numbers, now, policy)
    events = Emitter(domain.SOURCE)
    for a in plan.announcements:
        events.emit(topics.CASES_RECEIVED, a.fact, a.event_id, a.traceparent, time=now, actor=a.actor)
    await storage.write_plan(conn, plan, events.out)
    return plan.outcomes


class GroupWriter:
    """Group commit for HTTP submissions: requests queue up; one task writes them in one transaction.

    Under load many requests share a transaction (and its fsync); alone, a request waits for nothing.
    The queue is bounded (`max_queue`): when the database falls behind, a submission beyond it is
    refused at once (Overloaded: 503 with Retry-After) instead of waiting in an ever longer line.
    While submissions keep coming the writer keeps its database connection from group to group (no
    pool round trip and connection reset per group); it gives it back once the queue is empty.
    """

    def __init__(self, pool: asyncpg.Pool, policy: domain.DuplicatePolicy, on_commit: Callable[[], None],
                 max_group: int = 256, max_queue: int = 1000):
        self._pool = pool
        self._policy = policy
        self._on_commit = on_commit
        self._max = max_group
        self._queue: asyncio.Queue[tuple[domain.Pending, asyncio.Future[domain.Outcome]]] = \
            asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task | None = None
        self._conn: asyncpg.Connection | None = None

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="intake-group-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task:
            await self._queue.join()
            self._task.cancel()
            await self._release()

    async def submit(self, pending: domain.Pending) -> domain.Outcome:
        """Queue a submission and wait until it is durable; Overloaded at once when the queue is full."""
        fut: asyncio.Future[domain.Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((pending, fut))
        except asyncio.QueueFull:
            raise Overloaded(f"intake's write queue is full ({self._queue.maxsize} submissions waiting)") from None
        return await fut

    async def _run(self) -> None:
        while True:
            if self._queue.empty():
                await self._release()
            group = [await self._queue.get()]
            while len(group) < self._max and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._write(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)

    async def _write(self, group: list[tuple[domain.Pending, asyncio.Future[domain.Outcome]]]) -> None:
        try:
            if self._conn is None:
                self._conn = await self._pool.acquire()
            async with self._conn.transaction():
                outcomes = await accept_submissions(self._conn, [p for p, _ in group], utcnow(), self._policy)
        except Exception as exc:
            await self._release()  # the pool resets it (or closes a broken one); the next group takes another
            if len(group) > 1 and not isinstance(exc, OSError):
                # one bad apple (e.g. a key raced by another replica): write each alone
                for item in group:
                    await self._write([item])
                return
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self._on_commit()
        for (_, fut), outcome in zip(group, outcomes):
            if not fut.done():
                fut.set_result(outcome)


def submissions_handler(divisions: DivisionDirectory, policy: domain.DuplicatePolicy,
                        grids: GridDirectory | None = None) -> BatchHandler:
    """Kafka submissions: valid ones become cases like HTTP ones; invalid ones are answered with a
    rejection to the submitter and dead-lettered — both through the outbox, atomically."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        pending: list[domain.Pending] = []
        rejections = Emitter(domain.SOURCE)
        dead: list[Record] = []

        def refuse(item: Inbound, errors: list[dict[str, str]], reason: str) -> None:
            ev = item.event
            rejections.emit(topics.SUBMISSION_REJECTIONS,
                            SubmissionRejected(submission_id=ev.id, submitter=ev.source, errors=errors),
                            derive_id(domain.SOURCE, ev.source, ev.id, "rejected"), item.traceparent)
            dead.append(dead_letter_record(item.record, reason, "intake"))

        for item in items:
            ev = item.event
            if ev.type != SUBMISSION_TYPE:
                reason = f"intake.submissions takes {SUBMISSION_TYPE} events, not {ev.type}"
                refuse(item, [{"field": "ce_type", "detail": reason}], reason)
                continue
            try:
                submission = domain.validate_submission(ev.data, divisions, grids)
            except ValidationError as exc:
                errors = [{"field": ".".join(map(str, e["loc"])), "detail": e["msg"]} for e in exc.errors()]
                refuse(item, errors, f"invalid submission: {errors}"[:2000])
                continue
            if submission.disposition is not None:
                reason = "a disposition (直接办结 / 不予受理) is given at the window, over HTTP, not by a system"
                refuse(item, [{"field": "disposition", "detail": reason}], reason)
                continue
            # the submitting system is the author (its topic's ACL and contract vouch for its source)
            pending.append(domain.Pending(submission, f"kafka:{ev.source}:{ev.id}", ev.source, item.traceparent,
                                          submission_ref=ev.id, actor=Actor(ev.source, "department")))
        if pending:
            await accept_submissions(conn, pending, utcnow(), policy)
        await add_records_to_outbox(conn, dead)
        return rejections.out

    return handle


async def project_status(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Follow the router's decisions and the units' feedback to tell submitters where their case is,
    by the shared projection rule (shared.contracts.status), in the order the events were consumed."""
    events = [(i.event.type, i.event.subject, i.event.data, i.event.time or utcnow())
              for i in items if i.event is not None and i.event.subject]
    current = await storage.lock_standings(conn, list(dict.fromkeys(e[1] for e in events)))
    await storage.save_standings(conn, domain.standings_after(current, events))
    return []
