"""Rebuild the audit trace from the topics into a fresh schema, compare it with the live one, and
replay one case's history from the topics beside its audit timeline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import asyncpg
from aiokafka import TopicPartition

from services.audit import handlers as audit_handlers
from services.audit.entry import MIGRATIONS as AUDIT_MIGRATIONS
from shared.cloudevents import EnvelopeError, decode
from shared.db import create_pool, migrate
from shared.messaging.consumer import BatchProcessor, Inbound
from shared.messaging.log import LogError, LogRecord, Range, read, reader, resolve

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class RebuildResult:
    """What a rebuild read and recorded, and up to where (exclusive end offsets)."""

    read: int = 0
    recorded: int = 0
    not_events: int = 0  # records that are no CloudEvent (the live audit dead-letters them)
    ends: dict[TopicPartition, int] = field(default_factory=dict)


def check_schema_name(schema: str) -> str:
    if not SCHEMA_NAME.match(schema):
        raise LogError(f"invalid schema name {schema!r} (lower-case letters, digits, _)")
    return schema


async def rebuild_audit(bootstrap: str, dsn: str, schema: str, topic_names: list[str], *, dry_run: bool = False,
                        progress: Callable[[int], None] = lambda n: None,
                        started: Callable[[int], None] = lambda n: None, **client) -> RebuildResult:
    """Read the topics from their beginning to their current end and record every event as the audit
    service does (same decoding, inbox, hash chain and summaries) in a new schema."""
    check_schema_name(schema)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema):
            raise LogError(f"schema {schema!r} exists: a rebuild needs a fresh one")
    finally:
        await conn.close()
    result = RebuildResult()
    consumer = reader(bootstrap, **client)
    await consumer.start()
    try:
        rng = await resolve(consumer, Range(list(topic_names)))
        result.ends = dict(rng.ends)
        started(rng.total)
        if dry_run:
            result.read = rng.total
            return result
        await migrate(dsn, schema, AUDIT_MIGRATIONS)
        pool = await create_pool(dsn, schema, max_size=2)
        processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None,
                                   handle=audit_handlers.record_events, validate_contracts=False)
        try:
            async for batch in read(consumer, rng, max_records=500):
                inbound = []
                for rec in batch:
                    try:
                        inbound.append(Inbound(rec, decode(rec.key, rec.value, rec.headers), None))
                    except EnvelopeError:
                        result.not_events += 1
                if inbound:
                    await processor.apply(inbound)
                result.read += len(batch)
                progress(len(batch))
            result.recorded = await pool.fetchval("SELECT count(*) FROM events")
        finally:
            await pool.close()
    finally:
        await consumer.stop()
    return result


@dataclass
class Comparison:
    """How a rebuilt trace differs from the live one, over the events both could hold."""

    counts: dict[str, tuple[int, int]]  # type -> (live, rebuilt)
    cases: tuple[int, int]
    only_live: list[tuple[str, str, str]]  # (case, type, event id)
    only_rebuilt: list[tuple[str, str, str]]
    heads_equal: int
    heads_differ: int  # same events, other arrival order across topics (so other hashes)

    @property
    def matches(self) -> bool:
        """Same events for every case (chain order may differ: it is the order of arrival)."""
        return not self.only_live and not self.only_rebuilt and all(a == b for a, b in self.counts.values())

    @property
    def first_difference(self) -> str | None:
        for label, items in (("only in the live trace", self.only_live), ("only in the rebuild", self.only_rebuilt)):
            if items:
                case, type_, event_id = items[0]
                return f"{label}: case {case} {type_} {event_id}"
        return None


async def compare_audit(dsn: str, live: str, rebuilt: str, ends: dict[TopicPartition, int],
                        limit: int = 50) -> Comparison:
    """Compare two audit schemas over the events the rebuild read (the live trace may have more since)."""
    check_schema_name(live)
    check_schema_name(rebuilt)
    conn = await asyncpg.connect(dsn)
    try:
        bound = ("(SELECT t, p, o FROM unnest($1::text[], $2::int[], $3::bigint[]) AS b(t, p, o))")
        args = ([tp.topic for tp in ends], [tp.partition for tp in ends], [ends[tp] for tp in ends])
        within = (f"EXISTS (SELECT 1 FROM {bound} b WHERE b.t = e.topic AND b.p = e.partition"
                  " AND e.kafka_offset < b.o)")

        async def counts(schema: str) -> dict[str, int]:
            rows = await conn.fetch(f'SELECT type, count(*) AS n FROM "{schema}".events e WHERE {within}'
                                    " GROUP BY type", *args)
            return {r["type"]: r["n"] for r in rows}

        live_counts, rebuilt_counts = await counts(live), await counts(rebuilt)
        types = sorted(set(live_counts) | set(rebuilt_counts))

        async def only(a: str, b: str) -> list[tuple[str, str, str]]:
            rows = await conn.fetch(
                f'SELECT e.case_id, e.type, e.event_id FROM "{a}".events e WHERE {within} AND NOT EXISTS'
                f' (SELECT 1 FROM "{b}".events x WHERE x.source = e.source AND x.event_id = e.event_id)'
                f" ORDER BY e.id LIMIT {int(limit)}", *args)
            return [(r["case_id"], r["type"], r["event_id"]) for r in rows]

        heads = await conn.fetchrow(
            f'WITH l AS (SELECT DISTINCT ON (case_id) case_id, hash FROM "{live}".events e WHERE {within}'
            "            ORDER BY case_id, seq DESC),"
            f'     r AS (SELECT DISTINCT ON (case_id) case_id, hash FROM "{rebuilt}".events ORDER BY case_id, seq DESC)'
            " SELECT count(*) FILTER (WHERE l.hash = r.hash) AS same, count(*) FILTER (WHERE l.hash <> r.hash) AS differ,"
            " (SELECT count(*) FROM l) AS live_cases, (SELECT count(*) FROM r) AS rebuilt_cases"
            " FROM l JOIN r USING (case_id)", *args)
        return Comparison(
            counts={t: (live_counts.get(t, 0), rebuilt_counts.get(t, 0)) for t in types},
            cases=(heads["live_cases"], heads["rebuilt_cases"]),
            only_live=await only(live, rebuilt), only_rebuilt=await only(rebuilt, live),
            heads_equal=heads["same"], heads_differ=heads["differ"])
    finally:
        await conn.close()


@dataclass(frozen=True)
class HistoryLine:
    """One event of a case, as the topics and/or the audit trace have it."""

    time: str
    type: str
    source: str
    event_id: str
    topic: str
    in_topics: bool
    in_audit: bool


async def case_history(bootstrap: str, dsn: str, schema: str, case_id: str, topic_names: list[str],
                       **client) -> list[HistoryLine]:
    """A case's events from the topics (by key) beside its audit timeline; each line says where it is."""
    check_schema_name(schema)
    from_topics: dict[tuple[str, str], LogRecord] = {}
    consumer = reader(bootstrap, **client)
    await consumer.start()
    try:
        rng = await resolve(consumer, Range(list(topic_names)))
        key = case_id.encode()
        async for batch in read(consumer, rng):
            for rec in batch:
                if rec.key == key and rec.header("ce_id"):
                    from_topics.setdefault((rec.header("ce_source") or "", rec.header("ce_id") or ""), rec)
    finally:
        await consumer.stop()
    conn = await asyncpg.connect(dsn)
    try:
        audit = await conn.fetch(f'SELECT source, event_id, type, time, topic FROM "{schema}".events'
                                 " WHERE case_id = $1 ORDER BY time, seq", case_id)
    finally:
        await conn.close()
    lines = {(r["source"], r["event_id"]): HistoryLine(r["time"].isoformat(), r["type"], r["source"], r["event_id"],
                                                        r["topic"], (r["source"], r["event_id"]) in from_topics, True)
             for r in audit}
    for (source, event_id), rec in from_topics.items():
        if (source, event_id) not in lines:
            lines[(source, event_id)] = HistoryLine(rec.header("ce_time") or "", rec.header("ce_type") or "",
                                                    source, event_id, rec.topic, True, False)
    return sorted(lines.values(), key=lambda h: (h.time, h.type))
