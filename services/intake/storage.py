"""Intake's PostgreSQL access: submissions written in groups (one transaction for many requests)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.intake import domain
from shared.cloudevents import CloudEvent, derive_id
from shared.contracts import CaseDuplicateReported
from shared.contracts.submissions import CaseSubmission
from shared.messaging.outbox import Outgoing, add_to_outbox
from shared import topics

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """One submission waiting to be written."""

    submission: CaseSubmission
    idempotency_key: str | None
    submitted_by: str
    traceparent: str | None
    submission_ref: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the submitter is told."""

    case_id: UUID  # the case the submission created or repeats
    case_number: str
    submission_id: UUID
    duplicate: bool = False
    replayed: bool = False  # an earlier submission with the same idempotency key
    conflict: bool = False  # the idempotency key was used for a different submission


async def _earlier(conn: asyncpg.Connection, keys: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT s.idempotency_key, s.case_id AS submission_id, coalesce(s.duplicate_of, s.case_id) AS case_id,"
        " s.case_number, s.request_hash, s.submitted_by, s.duplicate_of IS NOT NULL AS duplicate"
        " FROM cases s WHERE s.idempotency_key = ANY($1::text[])",
        keys,
    )
    return {r["idempotency_key"]: r for r in rows}


def _replay(row: asyncpg.Record, p: Pending) -> Outcome:
    same = row["request_hash"] == domain.fingerprint(p.submission) and row["submitted_by"] == p.submitted_by
    return Outcome(row["case_id"], row["case_number"], row["submission_id"], row["duplicate"],
                   replayed=same, conflict=not same)


async def write_submissions(
    conn: asyncpg.Connection, items: list[Pending], now: datetime, policy: domain.DuplicatePolicy
) -> list[Outcome]:
    """Write a group of submissions in the caller's transaction; returns one outcome per item.

    Retries (same idempotency key) get the earlier outcome; repeats of an open case are linked to it
    and announced as `case.duplicate_reported`; the rest become cases with numbers reserved in bulk.
    """
    keys = [p.idempotency_key for p in items if p.idempotency_key]
    earlier = await _earlier(conn, keys) if keys else {}
    divisions = sorted({p.submission.location.division_code for p in items})
    # Serialise duplicate detection per division across replicas (sorted: no deadlocks).
    for d in divisions:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('intake-duplicates:' || $1))", d)
    # The most recent open cases of each division: a bounded candidate set, whatever the backlog.
    rows = await conn.fetch(
        "SELECT c.* FROM unnest($1::text[]) AS d(code) CROSS JOIN LATERAL ("
        " SELECT case_id, case_number, division_code, category, title || ' ' || description AS text, received_at"
        " FROM cases WHERE duplicate_of IS NULL AND division_code = d.code AND received_at >= $2"
        " AND status NOT IN ('resolved', 'closed')"  # a matter reported again after closure is a new case
        " ORDER BY received_at DESC LIMIT $3) AS c",
        divisions,
        now - policy.window,
        policy.candidates,
    )
    open_cases = [domain.OpenCase(**dict(r)) for r in rows]
    by_division: dict[str, list[domain.OpenCase]] = {}
    for c in open_cases:
        by_division.setdefault(c.division_code, []).append(c)

    outcomes: list[Outcome | None] = [None] * len(items)
    seen_keys: dict[str, int] = {}
    new_cases: list[int] = []
    duplicates: list[tuple[int, domain.OpenCase, float]] = []
    for i, p in enumerate(items):
        if p.idempotency_key in earlier:
            outcomes[i] = _replay(earlier[p.idempotency_key], p)
            continue
        if p.idempotency_key and p.idempotency_key in seen_keys:
            continue  # the same key twice in this group: answered from the first below
        if p.idempotency_key:
            seen_keys[p.idempotency_key] = i
        match = domain.find_duplicate(p.submission, now, by_division.get(p.submission.location.division_code, []),
                                      policy)
        if match:
            duplicates.append((i, *match))
        else:
            new_cases.append(i)
            placeholder = domain.OpenCase(uuid.uuid4(), "", p.submission.location.division_code,
                                          p.submission.category,
                                          f"{p.submission.title} {p.submission.description}", now)
            open_cases.append(placeholder)
            by_division.setdefault(placeholder.division_code, []).append(placeholder)

    # Reserve case numbers per prefix in one statement each.
    by_prefix: dict[str, list[int]] = {}
    for i in new_cases:
        by_prefix.setdefault(domain.case_number_prefix(items[i].submission.location.division_code, now), []).append(i)
    numbers: dict[int, str] = {}
    for prefix, idx in by_prefix.items():
        last = await conn.fetchval(
            "INSERT INTO case_number_counters (prefix, last) VALUES ($1, $2)"
            " ON CONFLICT (prefix) DO UPDATE SET last = case_number_counters.last + $2 RETURNING last",
            prefix, len(idx),
        )
        for n, i in enumerate(idx):
            numbers[i] = domain.format_case_number(prefix, last - len(idx) + 1 + n)

    # A new case made earlier in this group may be what a later duplicate repeats.
    made: dict[UUID, tuple[UUID, str]] = {}
    rows_out, events = [], []
    new_iter = iter(open_cases[len(rows):])
    for i in new_cases:
        placeholder = next(new_iter)
        p = items[i]
        case_id = uuid.uuid4()
        made[placeholder.case_id] = (case_id, numbers[i])
        outcomes[i] = Outcome(case_id, numbers[i], case_id)
        rows_out.append(_row(case_id, numbers[i], p, now, None, None))
        ev = CloudEvent.of(domain.received_event(case_id, numbers[i], p.submission, now, p.submission_ref),
                           source=domain.SOURCE, event_id=derive_id(domain.SOURCE, case_id, "received"), time=now)
        events.append(Outgoing(topics.CASES_RECEIVED, ev.with_traceparent(p.traceparent)))
    for i, case, score in duplicates:
        p = items[i]
        case_id, number = made.get(case.case_id, (case.case_id, case.case_number))
        submission_id = uuid.uuid4()
        outcomes[i] = Outcome(case_id, number, submission_id, duplicate=True)
        rows_out.append(_row(submission_id, number, p, now, case_id, score))
        ev = CloudEvent.of(
            CaseDuplicateReported(case_id=case_id, case_number=number, submission_id=submission_id,
                                  channel=p.submission.channel, similarity=score, received_at=now),
            source=domain.SOURCE, event_id=derive_id(domain.SOURCE, submission_id, "duplicate"), time=now,
        )
        events.append(Outgoing(topics.CASES_RECEIVED, ev.with_traceparent(p.traceparent)))
    # new cases first: a duplicate row references its case
    await conn.executemany(INSERT_SQL, [r for r in rows_out if r[-2] is None])
    await conn.executemany(INSERT_SQL, [r for r in rows_out if r[-2] is not None])
    await add_to_outbox(conn, events)
    for i, p in enumerate(items):
        if outcomes[i] is None:  # repeated key inside the group
            first = outcomes[seen_keys[p.idempotency_key]]
            outcomes[i] = Outcome(first.case_id, first.case_number, first.submission_id, first.duplicate,
                                  replayed=True)
    return [o for o in outcomes if o is not None]


INSERT_SQL = (
    "INSERT INTO cases (case_id, case_number, channel, title, description, category, division_code, grid_id,"
    " address, reporter_name, reporter_phone, idempotency_key, request_hash, submitted_by, received_at,"
    " submission, submission_ref, duplicate_of, similarity)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16::jsonb,$17,$18,$19)"
)


def _row(case_id: UUID, number: str, p: Pending, now: datetime, duplicate_of: UUID | None, score: float | None):
    s = p.submission
    return (
        case_id, number, s.channel.value, s.title, s.description, s.category, s.location.division_code,
        s.location.grid_id, s.location.address, s.reporter.name if s.reporter else None,
        s.reporter.phone if s.reporter else None, p.idempotency_key, domain.fingerprint(s), p.submitted_by, now,
        s.model_dump_json(), p.submission_ref, duplicate_of, score,
    )


class GroupWriter:
    """Group commit for HTTP submissions: requests queue up; one task writes them in one transaction.

    Under load many requests share a transaction (and its fsync); alone, a request waits for nothing.
    """

    def __init__(self, pool: asyncpg.Pool, policy: domain.DuplicatePolicy, on_commit, max_group: int = 256):
        self._pool = pool
        self._policy = policy
        self._on_commit = on_commit
        self._max = max_group
        self._queue: asyncio.Queue[tuple[Pending, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="intake-group-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task:
            await self._queue.join()
            self._task.cancel()

    async def submit(self, pending: Pending) -> Outcome:
        """Queue a submission and wait until it is durable."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((pending, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._write(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _write(self, group: list[tuple[Pending, asyncio.Future[Outcome]]]) -> None:
        from shared.cloudevents import utcnow

        try:
            async with self._pool.acquire() as conn, conn.transaction():
                outcomes = await write_submissions(conn, [p for p, _ in group], utcnow(), self._policy)
        except Exception as exc:
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


async def get_case(pool: asyncpg.Pool, case_id: UUID) -> asyncpg.Record | None:
    """A submission and the status of the case it created or repeats."""
    return await pool.fetchrow(
        "SELECT s.*, coalesce(c.status, s.status) AS case_status, c.case_id AS original_case_id"
        " FROM cases s LEFT JOIN cases c ON c.case_id = s.duplicate_of WHERE s.case_id = $1",
        case_id,
    )


async def advance_statuses(conn: asyncpg.Connection, changes: dict[str, domain.CaseStatus]) -> None:
    """Move cases forward to the given statuses (never backwards)."""
    if not changes:
        return
    rows = await conn.fetch("SELECT case_id, status FROM cases WHERE case_id = ANY($1::uuid[]) FOR UPDATE",
                            [UUID(c) for c in changes])
    updates = []
    for r in rows:
        new = domain.advance(domain.CaseStatus(r["status"]), changes[str(r["case_id"])])
        if new.value != r["status"]:
            updates.append((r["case_id"], new.value))
    await conn.executemany("UPDATE cases SET status = $2, status_updated_at = now() WHERE case_id = $1", updates)
