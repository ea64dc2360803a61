"""Intake's PostgreSQL queries."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from services.intake.domain import CaseSubmission


async def next_case_sequence(conn: asyncpg.Connection, prefix: str) -> int:
    """The next sequence for a prefix; the row lock makes it unique under concurrency."""
    return await conn.fetchval(
        "INSERT INTO case_number_counters (prefix, last) VALUES ($1, 1)"
        " ON CONFLICT (prefix) DO UPDATE SET last = case_number_counters.last + 1 RETURNING last",
        prefix,
    )


async def insert_case(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    case_number: str,
    sub: CaseSubmission,
    idempotency_key: str | None,
    submitted_by: str,
    received_at: datetime,
) -> None:
    """Store a submission as a case."""
    await conn.execute(
        "INSERT INTO cases (case_id, case_number, channel, title, description, category, division_code,"
        " grid_id, address, reporter_name, reporter_phone, idempotency_key, request_hash, submitted_by, received_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
        case_id,
        case_number,
        sub.channel.value,
        sub.title,
        sub.description,
        sub.category,
        sub.location.division_code,
        sub.location.grid_id,
        sub.location.address,
        sub.reporter.name if sub.reporter else None,
        sub.reporter.phone if sub.reporter else None,
        idempotency_key,
        sub.fingerprint(),
        submitted_by,
        received_at,
    )


async def find_by_idempotency_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> asyncpg.Record | None:
    """The case created earlier under this idempotency key, if any."""
    return await conn.fetchrow(
        "SELECT case_id, case_number, request_hash, submitted_by FROM cases WHERE idempotency_key = $1", key
    )


async def get_case(pool: asyncpg.Pool, case_id: UUID) -> asyncpg.Record | None:
    """One case as stored."""
    return await pool.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)
