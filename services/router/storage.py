"""The router's PostgreSQL queries (batched: one read and one write per batch)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable
from uuid import UUID

import asyncpg

from services.router.deadlines import LimitUnit
from services.router.domain import (
    CaseStatus,
    Clock,
    ClockChange,
    ClockColour,
    DispatchRecord,
    DispatchStatus,
    RoutingState,
    RunningClock,
)
from shared.contracts import RiskColour

_STATE_COLUMNS = (
    "case_id, case_number, status, dispatch_id, unit_id, unit_kind, category, rule_ids, catalogue_version,"
    " decided_at, division_code, risk, dispatches, excluded, returns, reopened, repeats, facts, traceparent"
)


def _state(r: asyncpg.Record) -> RoutingState:
    return RoutingState(
        case_id=str(r["case_id"]),
        case_number=r["case_number"],
        status=CaseStatus(r["status"]),
        catalogue_version=r["catalogue_version"],
        decided_at=r["decided_at"],
        division_code=r["division_code"],
        category=r["category"],
        risk=RiskColour(r["risk"]),
        rule_ids=tuple(r["rule_ids"]),
        dispatches=[DispatchRecord(**{**d, "status": DispatchStatus(d["status"])}) for d in json.loads(r["dispatches"])],
        excluded=list(r["excluded"]),
        returns=r["returns"],
        reopened=r["reopened"],
        repeats=r["repeats"],
        facts=json.loads(r["facts"]) if r["facts"] else {},
        traceparent=r["traceparent"],
    )


async def load_states(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, RoutingState]:
    """The routing state of the given cases, locked for this transaction (absent: not seen yet)."""
    rows = await conn.fetch(
        f"SELECT {_STATE_COLUMNS} FROM cases WHERE case_id = ANY($1::uuid[]) ORDER BY case_id FOR UPDATE",
        [UUID(c) for c in case_ids],
    )
    return {str(r["case_id"]): _state(r) for r in rows}


async def save_states(conn: asyncpg.Connection, states: Iterable[RoutingState]) -> None:
    """Insert or update the given states in one statement."""
    rows = []
    for s in states:
        lead = s.lead
        rows.append((
            UUID(s.case_id), s.case_number, s.status.value, UUID(lead.dispatch_id) if lead else None,
            lead.unit_id if lead else None, lead.unit_kind if lead else None, s.category, list(s.rule_ids),
            s.catalogue_version, s.decided_at, s.division_code, s.risk.value,
            json.dumps([{**d.__dict__, "status": d.status.value} for d in s.dispatches]), s.excluded, s.returns,
            s.reopened, s.repeats, json.dumps(s.facts, ensure_ascii=False), s.traceparent,
        ))
    await conn.executemany(
        f"INSERT INTO cases ({_STATE_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::jsonb,$14,$15,$16,$17,$18::jsonb,$19)"
        " ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status, dispatch_id = EXCLUDED.dispatch_id,"
        " unit_id = EXCLUDED.unit_id, unit_kind = EXCLUDED.unit_kind, category = EXCLUDED.category,"
        " rule_ids = EXCLUDED.rule_ids, risk = EXCLUDED.risk, dispatches = EXCLUDED.dispatches,"
        " excluded = EXCLUDED.excluded, returns = EXCLUDED.returns, reopened = EXCLUDED.reopened,"
        " repeats = EXCLUDED.repeats, facts = EXCLUDED.facts, updated_at = now()",
        rows,
    )


async def case_access(conn: asyncpg.Connection, case_id: UUID) -> tuple[str, str | None] | None:
    """A case's division (whose operators may act on it) and its trace; None for a case not seen."""
    row = await conn.fetchrow("SELECT division_code, traceparent FROM cases WHERE case_id = $1", case_id)
    return None if row is None else (row["division_code"], row["traceparent"])


async def case_of_dispatch(pool: asyncpg.Pool | asyncpg.Connection, dispatch_id: UUID) -> UUID | None:
    """The case a dispatch belongs to (by its clocks), if the router dispatched it."""
    return await pool.fetchval("SELECT case_id FROM clocks WHERE dispatch_id = $1 LIMIT 1", dispatch_id)


QUEUES = {
    # the command centre's work queues: which cases each holds
    "manual": "status = 'manual_triage'",
    "callback": "status = 'awaiting_callback'",
    "review": "status = 'resolution_review'",  # 办结审核
    "returns": "status = 'return_review'",  # 退单审核 / 转办审核
    "extension": "EXISTS (SELECT 1 FROM jsonb_array_elements(dispatches) d WHERE d->>'extension_due' IS NOT NULL"
                 " AND d->>'status' IN ('dispatched', 'accepted'))",  # 延期申请 to decide
    "overdue": "EXISTS (SELECT 1 FROM clocks k WHERE k.case_id = cases.case_id AND NOT k.stopped"
               " AND k.colour = 'red')",  # red clocks: the centre reassigns or supervises
}


async def queue(pool: asyncpg.Pool, name: str, divisions: list[str], limit: int = 200) -> list[asyncpg.Record]:
    """The cases of a work queue (QUEUES) within the divisions ("*" = all), oldest first. The
    jurisdiction is part of the query, so the limit counts only cases the caller may see."""
    if "*" in divisions:
        patterns = ["%"]
    else:
        patterns = [d + "%" for d in divisions if d.isdigit()]  # division codes are digits: no LIKE wildcards
    return await pool.fetch(
        "SELECT case_id, case_number, category, division_code, risk, unit_id, status, decided_at, updated_at"
        f" FROM cases WHERE {QUEUES[name]} AND division_code LIKE ANY($1::text[]) ORDER BY updated_at LIMIT $2",
        patterns, limit,
    )


# ---------------------------------------------------------------- clocks

async def start_clocks(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Start clocks: (dispatch_id, kind, case_id, unit_id, unit_kind, division, started, due, next_check, tp,
    limit_unit) — limit_unit is what the clock counts in (hours, calendar_days, working_days)."""
    await conn.executemany(
        "INSERT INTO clocks (dispatch_id, kind, case_id, unit_id, unit_kind, division_code, started_at, due_at,"
        " next_check, traceparent, limit_unit) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING",
        rows,
    )


async def stop_clocks(conn: asyncpg.Connection, stops: list[tuple[str, str | None]]) -> None:
    """Stop clocks: (dispatch_id, kind) — kind None stops both of the dispatch."""
    await conn.executemany(
        "UPDATE clocks SET stopped = true WHERE dispatch_id = $1 AND ($2::text IS NULL OR kind = $2)",
        [(UUID(d), k) for d, k in stops],
    )


async def due_clocks(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> list[RunningClock]:
    """Running clocks whose colour may change by `now`, locked (other replicas skip them)."""
    rows = await conn.fetch(
        "SELECT * FROM clocks WHERE NOT stopped AND paused_at IS NULL AND next_check <= $1"
        " ORDER BY next_check LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )
    return [RunningClock(clock_of(r), r["case_id"], r["unit_id"], r["unit_kind"], r["division_code"], r["traceparent"])
            for r in rows]


def clock_of(r: asyncpg.Record) -> Clock:
    """The domain clock of a row."""
    return Clock(str(r["dispatch_id"]), r["kind"], r["started_at"], r["due_at"], ClockColour(r["colour"]),
                 r["paused_at"], LimitUnit(r["limit_unit"]))


async def save_clocks(conn: asyncpg.Connection, changes: Iterable[ClockChange]) -> None:
    """Write clocks' colour, times, pause and next check."""
    await conn.executemany(
        "UPDATE clocks SET colour = $3, started_at = $4, due_at = $5, paused_at = $6, pause_reason = $7,"
        " next_check = $8 WHERE dispatch_id = $1 AND kind = $2",
        [(UUID(c.clock.dispatch_id), c.clock.kind, c.clock.colour.value, c.clock.started_at, c.clock.due_at,
          c.clock.paused_at, c.pause_reason, c.next_check) for c in changes],
    )


async def clocks_of_dispatch(conn: asyncpg.Connection, dispatch_id: UUID) -> list[Clock]:
    """The running clocks of a dispatch, locked."""
    rows = await conn.fetch(
        "SELECT * FROM clocks WHERE dispatch_id = $1 AND NOT stopped ORDER BY kind FOR UPDATE", dispatch_id
    )
    return [clock_of(r) for r in rows]
