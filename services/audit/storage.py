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
