"""Audit's PostgreSQL queries: batched appends (COPY), timelines, chains."""

from __future__ import annotations

import json
from typing import Iterable

import asyncpg

from services.audit.domain import TraceRecord

EVENT_COLUMNS = [
    "case_id", "seq", "event_id", "source", "type", "time", "topic", "partition", "kafka_offset",
    "trace_id", "data", "prev_hash", "hash",
]


async def chain_heads(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """The last (seq, hash) of each given case's chain."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (case_id) case_id, seq, hash FROM events WHERE case_id = ANY($1::text[])"
        " ORDER BY case_id, seq DESC",
        list(case_ids),
    )
    return {r["case_id"]: (r["seq"], r["hash"]) for r in rows}


async def append_events(conn: asyncpg.Connection,
                        rows: list[tuple[TraceRecord, str, bytes | None, bytes]]) -> None:
    """Append (record, its data as JSON, prev hash, hash) rows in one COPY."""
    await conn.copy_records_to_table(
        "events",
        columns=EVENT_COLUMNS,
        records=[
            (r.case_id, r.seq, r.event_id, r.source, r.type, r.time, r.topic, r.partition, r.kafka_offset,
             r.trace_id, data_json, prev, h)
            for r, data_json, prev, h in rows
        ],
    )


async def append_dead_letters(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Append dead-letter records (topic, partition, offset, key, value, headers json, error, consumer)."""
    await conn.executemany(
        "INSERT INTO dead_letters (topic, partition, kafka_offset, key, value, headers, error, consumer)"
        " VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8)",
        rows,
    )


def _record(r: asyncpg.Record) -> TraceRecord:
    return TraceRecord(
        case_id=r["case_id"], seq=r["seq"], event_id=r["event_id"], source=r["source"], type=r["type"],
        time=r["time"], topic=r["topic"], partition=r["partition"], kafka_offset=r["kafka_offset"],
        trace_id=r["trace_id"], data=json.loads(r["data"]),
    )


async def timeline(pool: asyncpg.Pool, case_id: str) -> list[TraceRecord]:
    """A case's events in the order they happened (event time, then ingestion order)."""
    # served by the (case_id, seq) key; a case has tens of events, sorted by time in PostgreSQL
    rows = await pool.fetch("SELECT * FROM events WHERE case_id = $1 ORDER BY time, seq", case_id)
    return [_record(r) for r in rows]


async def chain(pool: asyncpg.Pool, case_id: str) -> list[tuple[TraceRecord, bytes | None, bytes]]:
    """A case's records with stored hashes, in chain (seq) order."""
    rows = await pool.fetch("SELECT * FROM events WHERE case_id = $1 ORDER BY seq", case_id)
    return [(_record(r), r["prev_hash"], r["hash"]) for r in rows]


async def all_heads(conn: asyncpg.Connection, up_to_id: int) -> list[tuple[str, int, bytes]]:
    """Every case chain's head among the records up to an id."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (case_id) case_id, seq, hash FROM events WHERE id <= $1 ORDER BY case_id, seq DESC",
        up_to_id)
    return [(r["case_id"], r["seq"], r["hash"]) for r in rows]


async def insert_checkpoint(conn: asyncpg.Connection, cases: int, events: int, up_to_id: int, digest: bytes,
                            signature: str, key_id: str) -> None:
    """Store a signed checkpoint."""
    await conn.execute("INSERT INTO checkpoints (cases, events, up_to_id, digest, signature, key_id)"
                       " VALUES ($1,$2,$3,$4,$5,$6)", cases, events, up_to_id, digest, signature, key_id)


async def checkpoints(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every checkpoint, oldest first."""
    return await conn.fetch("SELECT * FROM checkpoints ORDER BY id")


async def case_ids(conn: asyncpg.Connection) -> list[str]:
    """Every case with a trace."""
    return [r["case_id"] for r in await conn.fetch("SELECT DISTINCT case_id FROM events ORDER BY case_id")]


async def search(pool: asyncpg.Pool, *, case_number: str | None, division: str | None, event_type: str | None,
                 unit_id: str | None, since, until, limit: int) -> list[asyncpg.Record]:
    """Cases whose trace matches every given filter, with their latest event."""
    return await pool.fetch(
        "SELECT case_id, max(time) AS last_time, count(*) AS events,"
        " (array_agg(type ORDER BY time DESC, seq DESC))[1] AS last_type,"
        " max(data->>'case_number') AS case_number FROM events WHERE"
        " ($1::text IS NULL OR data->>'case_number' = $1)"
        " AND ($2::text IS NULL OR data->'location'->>'division_code' LIKE $2 || '%')"
        " AND ($3::text IS NULL OR type = $3)"
        " AND ($4::text IS NULL OR data->>'unit_id' = $4)"
        " AND ($5::timestamptz IS NULL OR time >= $5) AND ($6::timestamptz IS NULL OR time < $6)"
        " GROUP BY case_id ORDER BY max(time) DESC LIMIT $7",
        case_number, division, event_type, unit_id, since, until, limit)


async def dead_letters(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    """The latest dead-letter records."""
    return await pool.fetch("SELECT id, topic, partition, kafka_offset, key, error, consumer, recorded_at"
                            " FROM dead_letters ORDER BY id DESC LIMIT $1", limit)


_GROUPS = {"unit": "d.unit_id", "town": "left(d.division, 9)", "county": "left(d.division, 6)"}


async def metrics(pool: asyncpg.Pool, by: str, period: str, since, until) -> list[asyncpg.Record]:
    """Command-centre figures from the trace, per unit, town or county and per month or quarter.

    acknowledged on time: accepted by `acknowledge_by`, among dispatches accepted or past that time;
    handled on time (及时处置率): resolved by `resolve_by`, among dispatches resolved or past due;
    satisfaction: satisfied callbacks among callbacks on cases the unit led; mediation success:
    agreements among finished mediations of the committee; returns and escalations: counts.
    """
    key = _GROUPS[by]
    return await pool.fetch(
        f"""
        WITH d AS (
            SELECT case_id, data->>'dispatch_id' AS dispatch_id, data->>'unit_id' AS unit_id,
                   coalesce(data->>'role', 'lead') AS role, data->'location'->>'division_code' AS division,
                   (data->>'acknowledge_by')::timestamptz AS ack_by, (data->>'resolve_by')::timestamptz AS res_by,
                   time AS at
            FROM events WHERE type = 'org.onewindow.case.dispatched.v1'
              AND ($2::timestamptz IS NULL OR time >= $2) AND ($3::timestamptz IS NULL OR time < $3)),
        fb AS (
            SELECT data->>'dispatch_id' AS dispatch_id,
                   min(time) FILTER (WHERE type = 'org.onewindow.dispatch.accepted.v1') AS accepted,
                   min(time) FILTER (WHERE type = 'org.onewindow.dispatch.resolved.v1') AS resolved,
                   count(*) FILTER (WHERE type = 'org.onewindow.dispatch.returned.v1') AS returns
            FROM events WHERE type LIKE 'org.onewindow.dispatch.%' GROUP BY 1),
        esc AS (SELECT data->>'dispatch_id' AS dispatch_id, count(*) AS n FROM events
                WHERE type = 'org.onewindow.case.escalated.v1' GROUP BY 1),
        cb AS (SELECT case_id, count(*) AS calls, count(*) FILTER (WHERE (data->>'satisfied')::boolean) AS satisfied
               FROM events WHERE type = 'org.onewindow.case.callback_recorded.v1' GROUP BY 1),
        med AS (SELECT data->>'committee_id' AS unit_id,
                       count(*) FILTER (WHERE data->>'to_status' = 'agreement_reached') AS agreed,
                       count(*) FILTER (WHERE data->>'to_status' IN
                           ('agreement_reached', 'failed', 'withdrawn', 'expired')) AS finished
                FROM events WHERE type = 'org.onewindow.mediation.transitioned.v1' GROUP BY 1)
        SELECT {key} AS key, date_trunc($1, d.at) AS period, count(*) AS dispatches,
               count(*) FILTER (WHERE fb.accepted <= d.ack_by) AS acknowledged_on_time,
               count(*) FILTER (WHERE fb.accepted IS NOT NULL OR now() > d.ack_by) AS acknowledge_due,
               count(*) FILTER (WHERE fb.resolved <= d.res_by) AS handled_on_time,
               count(*) FILTER (WHERE fb.resolved IS NOT NULL OR now() > d.res_by) AS handle_due,
               coalesce(sum(fb.returns), 0)::bigint AS returns, coalesce(sum(esc.n), 0)::bigint AS escalations,
               coalesce(sum(cb.satisfied) FILTER (WHERE d.role = 'lead'), 0)::bigint AS satisfied,
               coalesce(sum(cb.calls) FILTER (WHERE d.role = 'lead'), 0)::bigint AS callbacks,
               coalesce(max(med.agreed), 0) AS mediation_agreed, coalesce(max(med.finished), 0) AS mediation_finished
        FROM d LEFT JOIN fb USING (dispatch_id) LEFT JOIN esc USING (dispatch_id)
               LEFT JOIN cb USING (case_id) LEFT JOIN med ON med.unit_id = d.unit_id
        GROUP BY 1, 2 ORDER BY 2 DESC, 1
        """,
        period, since, until,
    )
