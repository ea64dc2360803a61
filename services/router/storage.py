"""The router's PostgreSQL queries (batched: one read and one write per batch)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable
from uuid import UUID

import asyncpg
import orjson

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
    """Insert or update the given states in one statement (the batch's rows as one JSON document)."""
    rows = []
    for s in states:
        lead = s.lead
        rows.append({
            "case_id": s.case_id, "case_number": s.case_number, "status": s.status.value,
            "dispatch_id": lead.dispatch_id if lead else None, "unit_id": lead.unit_id if lead else None,
            "unit_kind": lead.unit_kind if lead else None, "category": s.category, "rule_ids": list(s.rule_ids),
            "catalogue_version": s.catalogue_version, "decided_at": s.decided_at, "division_code": s.division_code,
            "risk": s.risk.value, "dispatches": [{**d.__dict__, "status": d.status.value} for d in s.dispatches],
            "excluded": s.excluded, "returns": s.returns, "reopened": s.reopened, "repeats": s.repeats,
            "facts": s.facts, "traceparent": s.traceparent,
        })
    if not rows:
        return
    await conn.execute(
        f"INSERT INTO cases ({_STATE_COLUMNS}) SELECT {_STATE_COLUMNS} FROM jsonb_to_recordset($1::jsonb) AS r("
        "case_id uuid, case_number text, status text, dispatch_id uuid, unit_id text, unit_kind text, category text,"
        " rule_ids text[], catalogue_version text, decided_at timestamptz, division_code text, risk text,"
        " dispatches jsonb, excluded text[], returns integer, reopened integer, repeats integer, facts jsonb,"
        " traceparent text)"
        " ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status, dispatch_id = EXCLUDED.dispatch_id,"
        " unit_id = EXCLUDED.unit_id, unit_kind = EXCLUDED.unit_kind, category = EXCLUDED.category,"
        " rule_ids = EXCLUDED.rule_ids, risk = EXCLUDED.risk, dispatches = EXCLUDED.dispatches,"
        " excluded = EXCLUDED.excluded, returns = EXCLUDED.returns, reopened = EXCLUDED.reopened,"
        " repeats = EXCLUDED.repeats, facts = EXCLUDED.facts, updated_at = now()",
        orjson.dumps(rows).decode(),
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
    limit_unit) — limit_unit is what the clock counts in (hours, calendar_days, working_days). One statement."""
    if not rows:
        return
    cols = list(zip(*rows))
    await conn.execute(
        "INSERT INTO clocks (dispatch_id, kind, case_id, unit_id, unit_kind, division_code, started_at, due_at,"
        " next_check, traceparent, limit_unit) SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[],"
        " $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[])"
        " ON CONFLICT DO NOTHING",
        *(list(c) for c in cols),
    )


async def stop_clocks(conn: asyncpg.Connection, stops: list[tuple[str, str | None]]) -> None:
    """Stop clocks: (dispatch_id, kind) — kind None stops both of the dispatch. One statement."""
    if not stops:
        return
    await conn.execute(
        "UPDATE clocks SET stopped = true FROM unnest($1::uuid[], $2::text[]) AS s(dispatch_id, kind)"
        " WHERE clocks.dispatch_id = s.dispatch_id AND (s.kind IS NULL OR clocks.kind = s.kind)",
        [UUID(d) for d, _ in stops], [k for _, k in stops],
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
    """Write clocks' colour, times, pause and next check (one statement)."""
    # the last change of a clock wins, as it did statement by statement (UPDATE ... FROM takes one row)
    latest = {(c.clock.dispatch_id, c.clock.kind): c for c in changes}
    rows = [(UUID(c.clock.dispatch_id), c.clock.kind, c.clock.colour.value, c.clock.started_at, c.clock.due_at,
             c.clock.paused_at, c.pause_reason, c.next_check) for c in latest.values()]
    if not rows:
        return
    await conn.execute(
        "UPDATE clocks SET colour = c.colour, started_at = c.started_at, due_at = c.due_at, paused_at = c.paused_at,"
        " pause_reason = c.pause_reason, next_check = c.next_check"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],"
        " $7::text[], $8::timestamptz[]) AS c(dispatch_id, kind, colour, started_at, due_at, paused_at, pause_reason,"
        " next_check) WHERE clocks.dispatch_id = c.dispatch_id AND clocks.kind = c.kind",
        *(list(col) for col in zip(*rows)),
    )


async def clocks_of_dispatch(conn: asyncpg.Connection, dispatch_id: UUID) -> list[Clock]:
    """The running clocks of a dispatch, locked."""
    rows = await conn.fetch(
        "SELECT * FROM clocks WHERE dispatch_id = $1 AND NOT stopped ORDER BY kind FOR UPDATE", dispatch_id
    )
    return [clock_of(r) for r in rows]
