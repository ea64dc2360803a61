"""Intake's PostgreSQL access: the reads a group of submissions is planned from, the writes of its
plan, the case a reader asks for, and submitters' statuses. Reads and writes only: the decisions
are the domain's."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence
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
    in sorted order, so replicas never deadlock; in one statement, not one round trip per division)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('intake-duplicates:' || d.code))"
        " FROM unnest($1::text[]) WITH ORDINALITY AS d(code, n) ORDER BY d.n",
        sorted(divisions),
    )


# Open cases read before, by id. What a case was reported as (number, division, category, text, time)
# never changes — only its status does, and the query that picks the candidates looks at that — so a
# candidate's text crosses the wire and is cut into bigrams once per process, not once per group.
# Bounded: the oldest entries go first (the candidates are the most recent cases of their division).
_KNOWN: dict[UUID, domain.OpenCase] = {}
KNOWN_MAX = 20_000


def remember_open_cases(cases: Iterable[domain.OpenCase]) -> None:
    """Keep cases a later group may compare a report with (the new cases of a group just written)."""
    for case in cases:
        _KNOWN[case.case_id] = case
    while len(_KNOWN) > KNOWN_MAX:
        del _KNOWN[next(iter(_KNOWN))]


async def numbers_and_open_cases(conn: asyncpg.Connection, prefixes: Sequence[str], divisions: Sequence[str],
                                 since: datetime, per_division: int) -> tuple[dict[str, int], list[domain.OpenCase]]:
    """In one statement (call it once the divisions are locked):

    - the last case number used under each prefix (0 for a new one), its counter locked until the
      transaction ends so that no other writer numbers under it meanwhile (pass the prefixes sorted:
      writers lock them in the same order). An upsert rather than SELECT ... FOR UPDATE: it also locks
      the counter of a prefix not yet used;
    - the most recent open cases of each division received since `since`, at most `per_division`
      each: a bounded candidate set for duplicate detection, whatever the backlog. Only their ids are
      read; the cases not seen before by this process in a second query.
    """
    rows = await conn.fetch(
        "WITH counters AS (INSERT INTO case_number_counters (prefix, last) SELECT p, 0 FROM unnest($1::text[]) AS p"
        " ON CONFLICT (prefix) DO UPDATE SET last = case_number_counters.last RETURNING prefix, last)"
        " SELECT prefix, last, NULL::uuid AS case_id FROM counters"
        " UNION ALL"
        " SELECT NULL, NULL, c.case_id FROM unnest($2::text[]) AS d(code) CROSS JOIN LATERAL ("
        " SELECT case_id FROM cases WHERE duplicate_of IS NULL AND division_code = d.code AND received_at >= $3"
        " AND status NOT IN ('resolved', 'closed', 'refused', 'merged', 'split')"  # a matter reported again after closure is a new case
        " ORDER BY received_at DESC LIMIT $4) AS c",
        list(prefixes),
        list(divisions),
        since,
        per_division,
    )
    last_numbers = {r[0]: r[1] for r in rows if r[2] is None}
    ids = [r[2] for r in rows if r[2] is not None]
    found = {i: case for i in ids if (case := _KNOWN.get(i)) is not None}
    missing = [i for i in ids if i not in found]
    if missing:
        read = [domain.OpenCase(**dict(r)) for r in await conn.fetch(
            "SELECT case_id, case_number, division_code, category, title || ' ' || description AS text, received_at"
            " FROM cases WHERE case_id = ANY($1::uuid[])", missing)]
        found.update((c.case_id, c) for c in read)
        remember_open_cases(read)
    return last_numbers, [found[i] for i in ids]


# ---------------------------------------------------------------- a group's plan, written


_COLUMNS = ("case_id", "case_number", "channel", "title", "description", "category", "division_code", "grid_id",
            "address", "reporter_name", "reporter_phone", "idempotency_key", "request_hash", "submitted_by",
            "submission", "submission_ref", "duplicate_of", "similarity")
_TYPES = ("uuid", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text",
          "text", "text", "uuid", "real")
# A group's rows in one statement: one array per column (received_at is the group's, one value), and
# the counters it numbered under set to their last number in the same statement.
INSERT_SQL = (
    f"WITH counters AS (UPDATE case_number_counters AS c SET last = n.last"
    f" FROM unnest(${len(_COLUMNS) + 2}::text[], ${len(_COLUMNS) + 3}::int[]) AS n(prefix, last)"
    f" WHERE c.prefix = n.prefix)"
    f" INSERT INTO cases ({', '.join(_COLUMNS[:14])}, received_at, {', '.join(_COLUMNS[14:])})"
    f" SELECT {', '.join('r.' + c for c in _COLUMNS[:14])}, ${len(_COLUMNS) + 1},"
    " r.submission::jsonb, r.submission_ref, r.duplicate_of, r.similarity"
    f" FROM unnest({', '.join(f'${i}::{t}[]' for i, t in enumerate(_TYPES, 1))}) AS r({', '.join(_COLUMNS)})"
)


def _row(submission_id: UUID, number: str, p: domain.Pending, duplicate_of: UUID | None,
         score: float | None) -> tuple:
    s = p.submission
    return (
        submission_id, number, s.channel.value, s.title, s.description, s.category, s.location.division_code,
        s.location.grid_id, s.location.address, s.reporter.name if s.reporter else None,
        s.reporter.phone if s.reporter else None, p.idempotency_key, domain.fingerprint(s), p.submitted_by,
        s.model_dump_json(), p.submission_ref, duplicate_of, score,
    )


async def write_plan(conn: asyncpg.Connection, plan: domain.GroupPlan, events: Sequence[Outgoing]) -> None:
    """Write a group's plan in the caller's transaction: the submissions' rows (new cases before the
    repeat reports that point at them) with the counters, then the events to the outbox."""
    rows = [_row(c.case_id, c.case_number, c.pending, None, None) for c in plan.new_cases]
    rows += [_row(r.submission_id, r.case_number, r.pending, r.case_id, r.similarity) for r in plan.repeats]
    if rows:  # (numbers are used only by new cases: no rows, no counters to move)
        await conn.execute(INSERT_SQL, *map(list, zip(*rows)), plan.received_at, list(plan.last_numbers),
                           list(plan.last_numbers.values()))
    await add_to_outbox(conn, events)
    remember_open_cases(plan.opened)


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
