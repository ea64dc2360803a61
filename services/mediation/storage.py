"""Mediation's PostgreSQL queries: all of its SQL (reads and writes, no decisions)."""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg

from services.mediation.domain import AGREEMENTS, OPEN, Mediation, Status

_COLUMNS = ("mediation_id, case_id, case_number, origin, dispatch_id, unit_id, referral_id, committee_id,"
            " mediator_id, specialty, status, started_at, deadline, sessions, extended, agreement, history,"
            " traceparent, finished_at")


def _within(n: int) -> str:
    """A condition: the row is within the jurisdiction in parameter $n (division prefixes; NULL =
    everywhere; an empty list = nowhere, so a grant without divisions sees nothing)."""
    return f"(${n}::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(${n}::text[]) j WHERE division_code LIKE j || '%'))"


async def open_loads(conn: asyncpg.Connection | asyncpg.Pool, jurisdiction: list[str] | None = None) -> dict[str, int]:
    """Open mediations per mediator (for capacity, and the command centre's load figures), of the
    disputes within a jurisdiction (division prefixes; None = everywhere)."""
    rows = await conn.fetch("SELECT mediator_id, count(*) AS n FROM mediations WHERE status = ANY($1::text[])"
                            f" AND {_within(2)} GROUP BY mediator_id", [s.value for s in OPEN], jurisdiction)
    return {r["mediator_id"]: r["n"] for r in rows}


def mediation_of(r: asyncpg.Record) -> Mediation:
    """A stored mediation row as the domain object."""
    return Mediation(r["mediation_id"], str(r["case_id"]), r["origin"], r["committee_id"], r["mediator_id"],
                     Status(r["status"]), r["started_at"], r["deadline"], r["sessions"], r["extended"],
                     json.loads(r["agreement"]) if r["agreement"] else None, json.loads(r["history"]))


async def load(conn: asyncpg.Connection, mediation_id: str) -> tuple[Mediation, asyncpg.Record] | None:
    """A mediation (locked for the transaction) and its row."""
    r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM mediations WHERE mediation_id = $1 FOR UPDATE", mediation_id)
    return (mediation_of(r), r) if r else None


async def exists(conn: asyncpg.Connection, mediation_id: str) -> bool:
    """Whether a mediation with this id was started."""
    return bool(await conn.fetchval("SELECT 1 FROM mediations WHERE mediation_id = $1", mediation_id))


async def insert(conn: asyncpg.Connection, m: Mediation, **extra) -> None:
    """Store a new mediation."""
    await conn.execute(
        f"INSERT INTO mediations ({_COLUMNS}, division_code) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
        "$14,$15,$16::jsonb,$17::jsonb,$18,$19,$20) ON CONFLICT DO NOTHING",
        m.mediation_id, m.case_id, extra.get("case_number"), m.origin, extra.get("dispatch_id"),
        extra.get("unit_id"), extra.get("referral_id"), m.committee_id, m.mediator_id, extra.get("specialty"),
        m.status.value, m.started_at, m.deadline, m.sessions, m.extended, None, json.dumps(m.history),
        extra.get("traceparent"), None, extra.get("division_code"),
    )


async def save(conn: asyncpg.Connection, m: Mediation, now: datetime) -> None:
    """Write a mediation's state after transitions."""
    await conn.execute(
        "UPDATE mediations SET status = $2, sessions = $3, extended = $4, deadline = $5, agreement = $6::jsonb,"
        " history = $7::jsonb, finished_at = CASE WHEN $8 THEN coalesce(finished_at, $9) END"
        " WHERE mediation_id = $1",
        m.mediation_id, m.status.value, m.sessions, m.extended, m.deadline,
        json.dumps(m.agreement, ensure_ascii=False) if m.agreement else None,
        json.dumps(m.history, ensure_ascii=False), m.status not in OPEN, now,
    )


async def of_mediator(pool: asyncpg.Pool, mediator_id: str) -> list[Mediation]:
    """A mediator's mediations, open first."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM mediations WHERE mediator_id = $1 ORDER BY finished_at NULLS FIRST, started_at",
        mediator_id)
    return [mediation_of(r) for r in rows]


async def overdue(conn: asyncpg.Connection, now: datetime) -> list[str]:
    """Open mediations past their time limit, locked."""
    rows = await conn.fetch("SELECT mediation_id FROM mediations WHERE status = ANY($1::text[]) AND deadline <= $2"
                            " FOR UPDATE SKIP LOCKED", [s.value for s in OPEN], now)
    return [r["mediation_id"] for r in rows]


async def figures(pool: asyncpg.Pool, jurisdiction: list[str] | None = None) -> list[asyncpg.Record]:
    """Per committee: finished, agreed, average days to outcome, open; of the disputes within a
    jurisdiction (division prefixes; None = everywhere), filtered here, before anything is counted."""
    return await pool.fetch(
        "SELECT committee_id, count(*) FILTER (WHERE finished_at IS NOT NULL) AS finished,"
        " count(*) FILTER (WHERE status = ANY($1::text[])) AS agreed,"
        " avg(extract(epoch FROM finished_at - started_at) / 86400) FILTER (WHERE finished_at IS NOT NULL) AS days,"
        f" count(*) FILTER (WHERE finished_at IS NULL) AS open FROM mediations WHERE {_within(2)}"
        " GROUP BY committee_id",
        [s.value for s in AGREEMENTS], jurisdiction,
    )
