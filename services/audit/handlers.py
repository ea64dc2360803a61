"""Audit's handlers: Kafka batches into the trace and the dead-letter record, and the acts over the
stored trace (signed checkpoints, verification, the one-off summary backfill); each loads, lets the
domain decide, and saves. Audit takes every event type as it comes, so it has no event map."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from services.audit import domain, storage
from shared.messaging.consumer import Inbound
from shared.messaging.outbox import Outgoing
from shared.telemetry import trace_id_of


def _as_dict(data: object) -> dict:
    # a summary folds only object data; anything else still counts as an event
    return data if isinstance(data, dict) else {}


def broker_time(record) -> datetime | None:
    """When the broker took the record (Kafka's timestamp in ms), or None when it carries none."""
    ms = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int) and ms > 0 else None


async def record_events(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Append each new event to its case's chain and fold it into the case's summary
    (per batch: one head read, one COPY, one summary read and one upsert)."""
    cases = {i.event.subject for i in items}
    heads = await storage.chain_heads(conn, cases)
    summaries = await storage.load_summaries(conn, cases)
    rows = []
    for item in items:
        ev, rec = item.event, item.record
        seq, prev = heads.get(ev.subject, (0, None))
        record = domain.TraceRecord(
            case_id=ev.subject, seq=seq + 1, event_id=ev.id, source=ev.source, type=ev.type, time=ev.time,
            topic=rec.topic, partition=rec.partition, kafka_offset=rec.offset,
            trace_id=trace_id_of(ev.traceparent), data=ev.data,
        )
        data_json = record.data_json()
        h = domain.chain_hash(prev, record, data_json)
        rows.append((record, data_json, prev, h, broker_time(rec)))
        heads[ev.subject] = (record.seq, h)
        summary = summaries.get(ev.subject) or domain.CaseSummary(case_id=ev.subject)
        summaries[ev.subject] = domain.fold(summary, ev.type, _as_dict(ev.data), ev.time)
    await storage.append_events(conn, rows)
    await storage.save_summaries(conn, summaries.values())
    return []


async def record_dead_letters(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Keep every dead-letter record (original bytes, headers, error) for operators."""
    rows = []
    for item in items:
        rec = item.record
        headers = {k: (v or b"").decode(errors="replace") for k, v in rec.headers or ()}
        rows.append((
            headers.get("dlq_topic", rec.topic), int(headers.get("dlq_partition", rec.partition) or 0),
            int(headers.get("dlq_offset", rec.offset) or 0), rec.key, rec.value,
            json.dumps([[k, (v or b"").decode(errors="replace")] for k, v in rec.headers or ()]),
            headers.get("dlq_error"), headers.get("dlq_consumer"),
        ))
    await storage.append_dead_letters(conn, rows)
    return []


# ---------------------------------------------------------------- acts over the stored trace


async def take_checkpoint(conn: asyncpg.Connection, key: bytes, key_id: str) -> dict | None:
    """Sign the heads of all chains as they are now (None when there is nothing new since the last one)."""
    top = await storage.last_event_id(conn)
    if top is None:
        return None
    last = await storage.last_checkpoint_up_to(conn)
    if last is not None and last >= top:
        return None
    heads = await storage.all_heads(conn, top)
    digest = domain.checkpoint_digest(heads)
    events = await storage.count_events(conn, top)
    await storage.insert_checkpoint(conn, len(heads), events, top, digest, domain.sign(digest, key), key_id)
    return {"cases": len(heads), "events": events, "up_to_id": top}


async def verify(conn: asyncpg.Connection, key: bytes, case_id: str | None = None) -> dict:
    """Recompute every chain (or one case's) and every checkpoint; name the first broken record."""
    broken = []
    for cid in [case_id] if case_id else await storage.case_ids(conn):
        first = domain.first_broken(await storage.chain(conn, cid))
        if first is not None:
            broken.append({"case_id": cid, "first_broken_seq": first})
    bad_checkpoints = []
    if case_id is None:  # a checkpoint covers every chain: one case's check says nothing of it
        for cp in await storage.checkpoints(conn):
            heads = await storage.all_heads(conn, cp["up_to_id"])
            if not domain.checkpoint_holds(heads, cp["digest"], cp["signature"], key):
                bad_checkpoints.append(cp["id"])
    return {"intact": not broken and not bad_checkpoints, "broken": broken, "checkpoints_failing": bad_checkpoints}


async def backfill_summaries(conn: asyncpg.Connection, batch: int = 5000) -> int:
    """Fold every stored event, in ingestion order, into empty case summaries (a store written before
    summaries existed). Does nothing if any summary exists; returns the number of cases written."""
    async with conn.transaction():
        if not await storage.lock_summaries_if_empty(conn):
            return 0
        summaries: dict[str, domain.CaseSummary] = {}
        last = 0
        while rows := await storage.events_in_order(conn, last, batch):
            for r in rows:
                s = summaries.get(r["case_id"]) or domain.CaseSummary(case_id=r["case_id"])
                summaries[r["case_id"]] = domain.fold(s, r["type"], _as_dict(json.loads(r["data"])), r["time"])
            last = rows[-1]["id"]
        await storage.save_summaries(conn, summaries.values())
        return len(summaries)
