"""Mediation's PostgreSQL queries: all of its SQL (reads and writes, no decisions)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

import asyncpg

from services.mediation.domain import AGREEMENTS, OPEN, Mediation, Status
from services.mediation.risks import OPEN as RISK_OPEN, Risk, Signal
from shared.contracts.events import RiskGrade, RiskStatus

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


# ---------------------------------------------------------------- the risk register

_RISK = ("risk_id, division_code, title, matter, origin, status, case_ids, factors, score, colour, cluster_key,"
         " guardian, care, history, opened_at")
_RISK_OPEN = [s.value for s in RISK_OPEN]


def _risk_signal(r: asyncpg.Record) -> Signal:
    return Signal(str(r["case_id"]), r["division_code"], r["matter"], r["received_at"], r["people_involved"],
                  frozenset(r["flags"]), r["repeats"])


def risk_of(r: asyncpg.Record) -> Risk:
    """A stored risk as the domain object."""
    return Risk(str(r["risk_id"]), r["division_code"], r["title"], r["matter"], r["origin"], RiskStatus(r["status"]),
                [str(c) for c in r["case_ids"]], json.loads(r["factors"]), r["score"], RiskGrade(r["colour"]),
                r["opened_at"], r["cluster_key"], json.loads(r["guardian"]) if r["guardian"] else None,
                json.loads(r["care"]), json.loads(r["history"]))


async def add_risk_signals(conn: asyncpg.Connection, signals: Iterable[Signal], repeats: dict[str, int]) -> None:
    """Store received cases (a case seen before is kept as it was) and count repeat reports."""
    rows = [(s.case_id, s.division_code, s.matter, s.received_at, s.people_involved, sorted(s.flags))
            for s in signals]
    if rows:
        await conn.executemany(
            "INSERT INTO risk_signals (case_id, division_code, matter, received_at, people_involved, flags)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", rows)
    if repeats:
        await conn.execute(
            "UPDATE risk_signals s SET repeats = s.repeats + u.n FROM unnest($1::uuid[], $2::int[]) AS u(c, n)"
            " WHERE s.case_id = u.c", list(repeats), list(repeats.values()))


async def risk_signals(conn: asyncpg.Connection, case_ids: Iterable[str]) -> list[Signal]:
    """The stored signals of these cases."""
    rows = await conn.fetch("SELECT * FROM risk_signals WHERE case_id = ANY($1::uuid[])", list(case_ids))
    return [_risk_signal(r) for r in rows]


async def related_signals(conn: asyncpg.Connection, keys: list[str], since: datetime, cases: list[str]) -> list[Signal]:
    """Signals of these places and matters (keys "division|matter") received since a time, plus
    the signals of the given cases (an open risk's older members)."""
    rows = await conn.fetch(
        "SELECT * FROM risk_signals WHERE (division_code || '|' || matter = ANY($1::text[]) AND received_at >= $2)"
        " OR case_id = ANY($3::uuid[])", keys, since, cases)
    return [_risk_signal(r) for r in rows]


async def lock_risk_keys(conn: asyncpg.Connection, keys: list[str]) -> None:
    """Serialise clustering per place and matter across consumers (transaction-scoped locks, in
    one order so two batches cannot deadlock)."""
    if keys:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('risk|' || k)) FROM"
                           " (SELECT DISTINCT k FROM unnest($1::text[]) k ORDER BY k) o", keys)


async def open_cluster_risks(conn: asyncpg.Connection, keys: list[str], case_ids: list[str]) -> list[Risk]:
    """Open risks of these cluster keys or holding these cases, locked."""
    rows = await conn.fetch(
        f"SELECT {_RISK} FROM risks WHERE status = ANY($3::text[]) AND (cluster_key = ANY($1::text[])"
        " OR case_ids && $2::uuid[]) FOR UPDATE", keys, case_ids, _RISK_OPEN)
    return [risk_of(r) for r in rows]


async def taken_cases(conn: asyncpg.Connection, case_ids: list[str]) -> set[str]:
    """Which of these cases already belong to a risk (open or not)."""
    rows = await conn.fetch("SELECT DISTINCT unnest(case_ids)::text AS c FROM risks WHERE case_ids && $1::uuid[]",
                            case_ids)
    return {r["c"] for r in rows} & set(case_ids)


def _risk_row(r: Risk, now: datetime) -> tuple:
    return (r.risk_id, r.division_code, r.title, r.matter, r.origin, r.status.value, r.case_ids,
            json.dumps(r.factors), r.score, r.colour.value, r.cluster_key,
            json.dumps(r.guardian, ensure_ascii=False) if r.guardian else None, json.dumps(r.care, ensure_ascii=False),
            json.dumps(r.history, ensure_ascii=False), r.opened_at, now)


async def insert_risks(conn: asyncpg.Connection, new: list[Risk], now: datetime) -> None:
    """Store new risks."""
    if new:
        await conn.executemany(
            f"INSERT INTO risks ({_RISK}, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7::uuid[],$8::jsonb,$9,$10,$11,"
            "$12::jsonb,$13::jsonb,$14::jsonb,$15,$16)", [_risk_row(r, now) for r in new])


async def save_risks(conn: asyncpg.Connection, changed: list[Risk], now: datetime) -> None:
    """Write risks' state after changes."""
    if changed:
        await conn.executemany(
            "UPDATE risks SET status = $2, case_ids = $3::uuid[], factors = $4::jsonb, score = $5, colour = $6,"
            " guardian = $7::jsonb, care = $8::jsonb, history = $9::jsonb, updated_at = $10 WHERE risk_id = $1",
            [(r.risk_id, *row[5:10], *row[11:14], row[15]) for r in changed for row in [_risk_row(r, now)]])


async def load_risk(conn: asyncpg.Connection, risk_id: str, *, lock: bool = False) -> Risk | None:
    """One risk (locked for the transaction when it is to change)."""
    r = await conn.fetchrow(f"SELECT {_RISK} FROM risks WHERE risk_id = $1{' FOR UPDATE' if lock else ''}", risk_id)
    return risk_of(r) if r else None


async def risk_listing(conn: asyncpg.Connection | asyncpg.Pool, jurisdiction: list[str] | None, status: str | None,
                  colour: str | None, limit: int) -> list[Risk]:
    """The register within a jurisdiction, open and highest-scored first."""
    rows = await conn.fetch(
        f"SELECT {_RISK} FROM risks WHERE {_within(1)} AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL OR colour = $3) ORDER BY status = ANY($4::text[]) DESC, score DESC, opened_at"
        " LIMIT $5", jurisdiction, status, colour, _RISK_OPEN, limit)
    return [risk_of(r) for r in rows]
