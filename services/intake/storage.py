"""Intake's PostgreSQL access: the reads a group of submissions is planned from, the writes of its
plan, the case a reader asks for, and submitters' statuses. Reads and writes only: the decisions
are the domain's."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence
from uuid import UUID

import asyncpg

from services.intake import domain
from shared.messaging.outbox import Outgoing, add_to_outbox

# ---------------------------------------------------------------- reads for a group's plan


async def earlier_submissions(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, domain.EarlierSubmission]:
    """The submissions written before under these idempotency keys, by key."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT s.idempotency_key, s.case_id AS submission_id, coalesce(s.duplicate_of, s.case_id) AS case_id,"
        " s.case_number, s.duplicate_of IS NOT NULL AS duplicate, s.request_hash, s.submitted_by"
        " FROM cases s WHERE s.idempotency_key = ANY($1::text[])",
        keys,
    )
    return {r["idempotency_key"]: domain.EarlierSubmission(
        r["submission_id"], r["case_id"], r["case_number"], r["duplicate"], r["request_hash"], r["submitted_by"])
        for r in rows}


async def lock_divisions(conn: asyncpg.Connection, divisions: Sequence[str]) -> None:
    """Serialise duplicate detection per division across replicas until the transaction ends (taken
    in sorted order, so replicas never deadlock)."""
    for d in sorted(divisions):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('intake-duplicates:' || $1))", d)


async def open_cases(conn: asyncpg.Connection, divisions: Sequence[str], since: datetime,
                     per_division: int) -> list[domain.OpenCase]:
    """The most recent open cases of each division received since `since`, at most `per_division`
    each: a bounded candidate set for duplicate detection, whatever the backlog."""
    rows = await conn.fetch(
        "SELECT c.* FROM unnest($1::text[]) AS d(code) CROSS JOIN LATERAL ("
        " SELECT case_id, case_number, division_code, category, title || ' ' || description AS text, received_at"
        " FROM cases WHERE duplicate_of IS NULL AND division_code = d.code AND received_at >= $2"
        " AND status NOT IN ('resolved', 'closed', 'refused', 'merged', 'split')"  # a matter reported again after closure is a new case
        " ORDER BY received_at DESC LIMIT $3) AS c",
        list(divisions),
        since,
        per_division,
    )
    return [domain.OpenCase(**dict(r)) for r in rows]


async def lock_case_numbers(conn: asyncpg.Connection, prefixes: Sequence[str]) -> dict[str, int]:
    """The last case number used under each prefix (0 for a new one), its counter locked until the
    transaction ends so that no other writer numbers under it meanwhile. Pass the prefixes sorted."""
    if not prefixes:
        return {}
    # An upsert rather than SELECT ... FOR UPDATE: it also locks the counter of a prefix not yet used.
    rows = await conn.fetch(
        "INSERT INTO case_number_counters (prefix, last) SELECT p, 0 FROM unnest($1::text[]) AS p"
        " ON CONFLICT (prefix) DO UPDATE SET last = case_number_counters.last RETURNING prefix, last",
        list(prefixes),
    )
    return {r["prefix"]: r["last"] for r in rows}


# ---------------------------------------------------------------- a group's plan, written


INSERT_SQL = (
    "INSERT INTO cases (case_id, case_number, channel, title, description, category, division_code, grid_id,"
    " address, reporter_name, reporter_phone, idempotency_key, request_hash, submitted_by, received_at,"
    " submission, submission_ref, duplicate_of, similarity)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16::jsonb,$17,$18,$19)"
)


def _row(submission_id: UUID, number: str, p: domain.Pending, received_at: datetime,
         duplicate_of: UUID | None, score: float | None) -> tuple:
    s = p.submission
    return (
        submission_id, number, s.channel.value, s.title, s.description, s.category, s.location.division_code,
        s.location.grid_id, s.location.address, s.reporter.name if s.reporter else None,
        s.reporter.phone if s.reporter else None, p.idempotency_key, domain.fingerprint(s), p.submitted_by,
        received_at, s.model_dump_json(), p.submission_ref, duplicate_of, score,
    )


async def write_plan(conn: asyncpg.Connection, plan: domain.GroupPlan, events: Sequence[Outgoing]) -> None:
    """Write a group's plan in the caller's transaction: counters, new cases, then the repeat reports
    (which reference their case), then the events to the outbox."""
    if plan.last_numbers:
        await conn.execute(
            "UPDATE case_number_counters AS c SET last = n.last"
            " FROM unnest($1::text[], $2::int[]) AS n(prefix, last) WHERE c.prefix = n.prefix",
            list(plan.last_numbers), list(plan.last_numbers.values()),
        )
    at = plan.received_at
    await conn.executemany(INSERT_SQL, [_row(c.case_id, c.case_number, c.pending, at, None, None)
                                        for c in plan.new_cases])
    await conn.executemany(INSERT_SQL, [_row(r.submission_id, r.case_number, r.pending, at, r.case_id, r.similarity)
                                        for r in plan.repeats])
    await add_to_outbox(conn, events)


# ---------------------------------------------------------------- reading a case, submitters' statuses


async def get_case(pool: asyncpg.Pool, case_id: UUID) -> asyncpg.Record | None:
    """A submission and the status of the case it created or repeats."""
    return await pool.fetchrow(
        "SELECT s.*, coalesce(c.status, s.status) AS case_status, c.case_id AS original_case_id"
        " FROM cases s LEFT JOIN cases c ON c.case_id = s.duplicate_of WHERE s.case_id = $1",
        case_id,
    )


async def lock_standings(conn: asyncpg.Connection, case_ids: Sequence[str]) -> dict[str, domain.Standing]:
    """The current standing (status, lead dispatch, holder) of each known case, by case id, locked
    until the transaction ends."""
    if not case_ids:
        return {}
    rows = await conn.fetch("SELECT case_id, status, lead_dispatch_id, holder_unit_id, holder_since FROM cases"
                            " WHERE case_id = ANY($1::uuid[]) ORDER BY case_id FOR UPDATE",
                            [UUID(c) for c in case_ids])
    return {str(r["case_id"]): domain.Standing(domain.CaseStatus(r["status"]), r["lead_dispatch_id"],
                                               r["holder_unit_id"], r["holder_since"]) for r in rows}


async def save_standings(conn: asyncpg.Connection, standings: dict[str, domain.Standing]) -> None:
    """Set cases' standings (and when their status changed), in one statement."""
    if not standings:
        return
    ids = list(standings)
    await conn.execute(
        "UPDATE cases c SET status = n.status, lead_dispatch_id = n.lead, holder_unit_id = n.holder,"
        " holder_since = n.since, status_updated_at = now()"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])"
        " AS n(case_id, status, lead, holder, since) WHERE c.case_id = n.case_id",
        [UUID(c) for c in ids], [standings[c].status.value for c in ids],
        [standings[c].lead_dispatch_id for c in ids], [standings[c].holder_unit_id for c in ids],
        [standings[c].holder_since for c in ids])


# ---------------------------------------------------------------- the citizen's own acts


async def case_for_citizen(conn: asyncpg.Connection, case_number: str) -> asyncpg.Record | None:
    """The case a citizen names by its number: the report's own reporter phone, and the status of the
    case it created or repeats (locked until the transaction ends, so two requests queue)."""
    return await conn.fetchrow(
        "SELECT s.reporter_phone, s.division_code, c.case_id, c.case_number, c.status, c.status_updated_at,"
        " EXISTS (SELECT 1 FROM citizen_acts a WHERE a.case_id = c.case_id AND a.kind = 'rating') AS rated"
        " FROM cases s JOIN cases c ON c.case_id = coalesce(s.duplicate_of, s.case_id)"
        " WHERE s.case_number = $1 FOR UPDATE OF c",
        case_number,
    )


async def record_citizen_act(conn: asyncpg.Connection, event: Outgoing, case_id: UUID, kind: str,
                             acted_by: str) -> bool:
    """Keep the act and put its event in the outbox; False when the same act was recorded before."""
    added = await conn.fetchval(
        "INSERT INTO citizen_acts (event_id, case_id, kind, acted_by) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true", event.event.id, case_id, kind, acted_by)
    if added:
        await add_to_outbox(conn, [event])
    return bool(added)
