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


async def append_events(conn: asyncpg.Connection, rows: list[tuple[TraceRecord, bytes | None, bytes]]) -> None:
    """Append records with their chain hashes in one COPY."""
    await conn.copy_records_to_table(
        "events",
        columns=EVENT_COLUMNS,
        records=[
            (r.case_id, r.seq, r.event_id, r.source, r.type, r.time, r.topic, r.partition, r.kafka_offset,
             r.trace_id, json.dumps(r.data, ensure_ascii=False), prev, h)
            for r, prev, h in rows
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
