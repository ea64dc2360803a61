"""Audit's PostgreSQL queries, all of its SQL: batched appends (COPY), timelines, chains, checkpoints,
case summaries, dead letters and the command centre's metrics."""

from __future__ import annotations

import json
import re
from datetime import datetime
from dataclasses import fields
from operator import attrgetter
from typing import Iterable

import asyncpg
import orjson

from services.audit.domain import CaseSummary, Checkpoint, Guard, NewRecord, TraceRecord

# Reads that a request (pool) and a transaction (connection) both make.
Db = asyncpg.Connection | asyncpg.Pool

EVENT_COLUMNS = [
    "case_id", "seq", "event_id", "source", "type", "time", "topic", "partition", "kafka_offset",
    "trace_id", "data", "prev_hash", "hash",
]


# The COPY's columns, in the order of domain.NewRecord.
NEW_RECORD_COLUMNS = list(NewRecord._fields)


async def heads_and_summaries(conn: asyncpg.Connection, case_ids: Iterable[str]
                              ) -> tuple[dict[str, tuple[int, bytes]], dict[str, CaseSummary]]:
    """In one statement, each given case's chain head (seq, hash of its last record; none for a new
    case) and its stored summary (none for a new case or a risk)."""
    rows = await conn.fetch(_HEADS_AND_SUMMARIES, orjson.dumps(list(case_ids)).decode())
    heads, summaries = {}, {}
    for r in rows:
        if r["head_seq"] is not None:
            heads[r["k"]] = (r["head_seq"], r["head_hash"])
        if r["case_id"] is not None:
            summaries[r["k"]] = CaseSummary(*r[3:])
    return heads, summaries


async def append_events(conn: asyncpg.Connection, rows: list[NewRecord]) -> None:
    """Append new records in one COPY."""
    await conn.copy_records_to_table("events", columns=NEW_RECORD_COLUMNS, records=rows)


# Up to this many records a batch is written in one statement (the records and the summaries); more go
# by COPY, then the summaries' upsert. Each statement is a round trip whose fixed cost (a few hundred
# µs of CPU between the service and PostgreSQL) dominates small batches; per row, COPY is cheaper.
ONE_STATEMENT_MAX = 16


async def record(conn: asyncpg.Connection, rows: list[NewRecord], summaries: list[CaseSummary]) -> None:
    """Append a batch's records and upsert its cases' summaries: one statement for a small batch,
    else COPY and one upsert."""
    if not rows:
        return
    if len(rows) > ONE_STATEMENT_MAX:
        await append_events(conn, rows)
        await save_summaries(conn, summaries)
        return
    await conn.execute(_APPEND_AND_SAVE, *[list(c) for c in zip(*rows)], *_summary_arrays(summaries))


async def append_dead_letters(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Append dead-letter records (topic, partition, offset, key, value, headers json, error, consumer)."""
    await conn.executemany(
        "INSERT INTO dead_letters (topic, partition, kafka_offset, key, value, headers, error, consumer)"
        " VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8)",
        rows,
    )


def record_of(r: asyncpg.Record) -> TraceRecord:
    """A stored event row as the domain's trace record."""
    return TraceRecord(
        case_id=r["case_id"], seq=r["seq"], event_id=r["event_id"], source=r["source"], type=r["type"],
        time=r["time"], topic=r["topic"], partition=r["partition"], kafka_offset=r["kafka_offset"],
        trace_id=r["trace_id"], data=json.loads(r["data"]), hashed_text=r.get("data_text"),
        actor=json.loads(r["actor"]) if r.get("actor") else None,
    )


async def timeline(pool: asyncpg.Pool, case_id: str) -> list[TraceRecord]:
    """A case's events in the order they happened (event time, then ingestion order), with the events
    of the cases merged into it (并单: its timeline shows every report it stands for)."""
    # served by the (case_id, seq) key; a case has tens of events, sorted by time in PostgreSQL
    rows = await pool.fetch(
        "SELECT * FROM events WHERE case_id = ANY(array_append((SELECT array_agg(case_id) FROM case_summaries"
        " WHERE merged_into = $1), $1)) ORDER BY time, seq", case_id)
    return [record_of(r) for r in rows]


async def chain(db: Db, case_id: str) -> list[tuple[TraceRecord, bytes | None, bytes]]:
    """A case's records with stored hashes, in chain (seq) order."""
    rows = await db.fetch("SELECT * FROM events WHERE case_id = $1 ORDER BY seq", case_id)
    return [(record_of(r), r["prev_hash"], r["hash"]) for r in rows]


async def all_heads(conn: asyncpg.Connection, up_to_id: int) -> list[tuple[str, int, bytes]]:
    """Every case chain's head among the records up to an id."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (case_id) case_id, seq, hash FROM events WHERE id <= $1 ORDER BY case_id, seq DESC",
        up_to_id)
    return [(r["case_id"], r["seq"], r["hash"]) for r in rows]


async def last_event_id(db: Db) -> int | None:
    """The id of the latest recorded event (None while the trace is empty)."""
    return await db.fetchval("SELECT max(id) FROM events")


async def count_events(conn: asyncpg.Connection, up_to_id: int) -> int:
    """How many events were recorded up to an id."""
    return await conn.fetchval("SELECT count(*) FROM events WHERE id <= $1", up_to_id)


async def last_checkpoint_up_to(conn: asyncpg.Connection) -> int | None:
    """The event id the latest checkpoint covers up to (None before the first)."""
    return await conn.fetchval("SELECT max(up_to_id) FROM checkpoints")


async def lock_checkpoints(conn: asyncpg.Connection) -> None:
    """One signer at a time (replicas): a transaction-scoped advisory lock."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('onewindow-audit-checkpoint'))")


async def now(db: Db) -> datetime:
    """The database's clock (the transaction's start), which also stamps `recorded_at`."""
    return await db.fetchval("SELECT now()")


def checkpoint_of(r: asyncpg.Record) -> Checkpoint:
    """A stored checkpoint row as the domain's checkpoint."""
    return Checkpoint(id=r["id"], taken_at=r["taken_at"], cases=r["cases"], events=r["events"],
                      up_to_id=r["up_to_id"], digest=r["digest"], signature=r["signature"], key_id=r["key_id"],
                      seq=r["seq"], prev_signature=r["prev_signature"])


async def last_checkpoint(conn: asyncpg.Connection) -> Checkpoint | None:
    """The checkpoint a new one follows: the newest chained one, else the newest from before chaining."""
    row = await conn.fetchrow("SELECT * FROM checkpoints ORDER BY seq DESC NULLS LAST, id DESC LIMIT 1")
    return checkpoint_of(row) if row else None


async def insert_checkpoint(conn: asyncpg.Connection, cp: Checkpoint) -> None:
    """Store a signed checkpoint."""
    await conn.execute(
        "INSERT INTO checkpoints (taken_at, cases, events, up_to_id, digest, signature, key_id, seq, prev_signature)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        cp.taken_at, cp.cases, cp.events, cp.up_to_id, cp.digest, cp.signature, cp.key_id, cp.seq, cp.prev_signature)


async def checkpoints(conn: asyncpg.Connection) -> list[Checkpoint]:
    """Every checkpoint, in the order stored (id)."""
    return [checkpoint_of(r) for r in await conn.fetch("SELECT * FROM checkpoints ORDER BY id")]


async def absent_events(conn: asyncpg.Connection, ids: list[int]) -> set[int]:
    """Which of the given event ids are not (any more) in the trace."""
    rows = await conn.fetch("SELECT i FROM unnest($1::bigint[]) AS k(i) WHERE NOT EXISTS"
                            " (SELECT 1 FROM events e WHERE e.id = k.i)", ids)
    return {r["i"] for r in rows}


async def first_event_after(conn: asyncpg.Connection, after_id: int) -> datetime | None:
    """When the first event after an id was recorded (None when there is none)."""
    return await conn.fetchval("SELECT recorded_at FROM events WHERE id > $1 ORDER BY id LIMIT 1", after_id)


async def guards(conn: asyncpg.Connection, tables: Iterable[str]) -> list[Guard]:
    """The user triggers on the given tables of the current schema, with the function each calls."""
    rows = await conn.fetch(
        "SELECT c.relname, t.tgname, t.tgenabled::text AS enabled, t.tgtype, p.proname, p.prosrc"
        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        " AND NOT t.tgisinternal AND c.relname = ANY($1)",
        sorted(set(tables)))
    return [Guard(table=r["relname"], trigger=r["tgname"], enabled=r["enabled"], type=r["tgtype"],
                  function=r["proname"], function_source=r["prosrc"]) for r in rows]


async def case_ids(conn: asyncpg.Connection) -> list[str]:
    """Every case with a trace."""
    return [r["case_id"] for r in await conn.fetch("SELECT DISTINCT case_id FROM events ORDER BY case_id")]


SUMMARY_COLUMNS = [f.name for f in fields(CaseSummary)]


async def load_summaries(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseSummary]:
    """The stored summaries of the given cases."""
    # a join, not `= ANY($1)`: the generic plan of a prepared ANY compares every row with every key
    rows = await conn.fetch("SELECT s.* FROM unnest($1::text[]) AS k(case_id) JOIN case_summaries s USING (case_id)",
                            list(case_ids))
    return {r["case_id"]: summary_of(r) for r in rows}


_SUMMARY_TYPES = {"units": "text[]", "overdue": "boolean", "escalations": "integer", "returns": "integer",
                  "events": "integer", "holder_since": "timestamptz", "opened_at": "timestamptz",
                  "last_event_at": "timestamptz"}
_summary_values = attrgetter(*SUMMARY_COLUMNS)
_UNITS_AT = SUMMARY_COLUMNS.index("units")
# Per case, one backward step on the (case_id, seq) key to the chain's head and one lookup by key of
# the summary (the fields in order from the fourth column on): index lookups per case, however large
# the store. Both are LATERAL with LIMIT so that the planner keeps them so (a plain join of the
# summaries is planned as a hash join over all of them once the batch is large); not `= ANY($1)`:
# the generic plan of a prepared ANY compares every row with every key. The case ids come as a JSON
# array: PostgreSQL estimates a JSON array's elements without looking at them (unnest of an array it
# counts), so the cached generic plan is as cheap as a fresh one and is used; with unnest every
# execution of a small batch was planned anew (~0.1 ms of PostgreSQL's CPU per batch).
_HEADS_AND_SUMMARIES = (
    "SELECT k.case_id AS k, h.seq AS head_seq, h.hash AS head_hash, "
    + ", ".join(f"s.{c}" for c in SUMMARY_COLUMNS)
    + " FROM jsonb_array_elements_text($1::jsonb) AS k(case_id)"
    " LEFT JOIN LATERAL (SELECT seq, hash FROM events e WHERE e.case_id = k.case_id ORDER BY seq DESC LIMIT 1) h"
    " ON true LEFT JOIN LATERAL (SELECT * FROM case_summaries s WHERE s.case_id = k.case_id LIMIT 1) s ON true")


def _text_array(items: list[str] | None) -> str | None:
    """A text[] literal ({"a","b"}): the ragged units of many rows travel as one text array, each cast."""
    if items is None:
        return None
    return "{" + ",".join('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


_SAVE_SUMMARIES = (
    f"INSERT INTO case_summaries ({', '.join(SUMMARY_COLUMNS)}) SELECT "
    + ", ".join(f"u.{c}::text[]" if c == "units" else f"u.{c}" for c in SUMMARY_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i + 1}::{'text' if c == 'units' else _SUMMARY_TYPES.get(c, 'text')}[]"
                for i, c in enumerate(SUMMARY_COLUMNS))
    + f") AS u({', '.join(SUMMARY_COLUMNS)})"
    " ON CONFLICT (case_id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in SUMMARY_COLUMNS[1:]))


def _summary_arrays(summaries: Iterable[CaseSummary]) -> list[list]:
    rows = [_summary_values(s) for s in summaries]
    columns = [list(c) for c in zip(*rows)] if rows else [[] for _ in SUMMARY_COLUMNS]
    columns[_UNITS_AT] = [_text_array(u) for u in columns[_UNITS_AT]]
    return columns


async def save_summaries(conn: asyncpg.Connection, summaries: Iterable[CaseSummary]) -> None:
    """Upsert summaries in one statement: one array per column, unnested (the batch's cases)."""
    columns = _summary_arrays(summaries)
    if columns[0]:
        await conn.execute(_SAVE_SUMMARIES, *columns)


_EVENT_TYPES = {"seq": "integer", "time": "timestamptz", "partition": "integer", "kafka_offset": "bigint",
                "data": "jsonb", "prev_hash": "bytea", "hash": "bytea", "broker_time": "timestamptz"}
# the records (an INSERT from one array per column, done whatever the rest of the statement does) and
# the summaries' upsert, its parameters numbered after the records'
_APPEND_AND_SAVE = (
    f"WITH appended AS (INSERT INTO events ({', '.join(NEW_RECORD_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_EVENT_TYPES.get(c, 'text')}[]" for i, c in enumerate(NEW_RECORD_COLUMNS)) + ")) "
    + re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + len(NEW_RECORD_COLUMNS)}", _SAVE_SUMMARIES))


async def search(pool: asyncpg.Pool, *, case_number: str | None = None, division: str | None = None,
                 unit_id: str | None = None, holder_unit_id: str | None = None, category: str | None = None,
                 status: str | None = None, risk_colour: str | None = None, supervision: str | None = None,
                 overdue: bool | None = None, escalated: bool | None = None, since=None, until=None,
                 jurisdiction: list[str] | None = None, limit: int = 50) -> list[asyncpg.Record]:
    """Case summaries matching every given filter, latest activity first.

    `division` matches a code and everything under it; `unit_id` any unit the case was dispatched to;
    `since`/`until` bound when the case was opened; `jurisdiction` (division prefixes) limits what a
    grant may see.
    """
    return await pool.fetch(
        "SELECT * FROM case_summaries WHERE"
        " ($1::text IS NULL OR case_number = $1)"
        " AND ($2::text IS NULL OR division LIKE $2 || '%')"
        " AND ($3::text IS NULL OR units @> ARRAY[$3::text])"
        " AND ($4::text IS NULL OR holder_unit_id = $4)"
        " AND ($5::text IS NULL OR category = $5)"
        " AND ($6::text IS NULL OR status = $6)"
        " AND ($7::text IS NULL OR risk_colour = $7)"
        " AND ($8::text IS NULL OR supervision = $8)"
        " AND ($9::boolean IS NULL OR overdue = $9)"
        " AND ($10::boolean IS NULL OR (escalations > 0) = $10)"
        " AND ($11::timestamptz IS NULL OR opened_at >= $11) AND ($12::timestamptz IS NULL OR opened_at < $12)"
        " AND ($14::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($14::text[]) j WHERE division LIKE j || '%'))"
        " ORDER BY last_event_at DESC LIMIT $13",
        case_number, division, unit_id, holder_unit_id, category, status, risk_colour, supervision, overdue,
        escalated, since, until, limit, jurisdiction)


def summary_of(r: asyncpg.Record) -> CaseSummary:
    """A stored summary row as the domain object."""
    return CaseSummary(**{c: r[c] for c in SUMMARY_COLUMNS})


async def events_in_order(db: Db, after_id: int, limit: int) -> list[asyncpg.Record]:
    """Events (id, case_id, type, time, data) after an id, in ingestion order: to rebuild projections."""
    return await db.fetch("SELECT id, case_id, type, time, data FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                            after_id, limit)


async def feed(db: Db, after_id: int, limit: int, jurisdiction: list[str] | None) -> list[asyncpg.Record]:
    """The live feed: events after an id in ingestion order, of cases within the jurisdiction
    (division prefixes; None = everywhere). Filtered in SQL, before the limit."""
    return await db.fetch(
        "SELECT e.id, e.case_id, e.type, e.time, e.data FROM events e"
        " WHERE e.id > $1 AND ($3::text[] IS NULL OR EXISTS (SELECT 1 FROM case_summaries s, unnest($3::text[]) j"
        "   WHERE s.case_id = e.case_id AND s.division LIKE j || '%'))"
        " ORDER BY e.id LIMIT $2", after_id, limit, jurisdiction)


async def dead_letters(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    """The latest dead-letter records."""
    return await pool.fetch("SELECT id, topic, partition, kafka_offset, key, error, consumer, recorded_at"
                            " FROM dead_letters ORDER BY id DESC LIMIT $1", limit)


_GROUPS = {"unit": "d.unit_id", "town": "left(d.division, 9)", "county": "left(d.division, 6)",
           # the grid of the dispatch's location (网格事件及时处置率), the channel the case came in by
           "grid": "d.grid_id", "channel": "d.channel"}
# groupings a dispatch may lack (no grid, or no case.received in the trace: a court referral)
_OPTIONAL_GROUPS = {"grid", "channel"}
_CHANNEL = ("(SELECT r.data->>'channel' FROM events r WHERE r.case_id = events.case_id"
            " AND r.type = 'org.onewindow.case.received.v1' ORDER BY r.seq LIMIT 1)")


async def metrics(pool: asyncpg.Pool, by: str, period: str, since, until,
                  jurisdiction: list[str] | None = None) -> list[asyncpg.Record]:
    """Command-centre figures from the trace, per unit, town, county, grid or channel and per month or
    quarter of Beijing time (the period is the Beijing date it starts on; by grid or channel: the
    dispatches that have one).

    acknowledged on time: accepted by `acknowledge_by`, among dispatches accepted or past that time;
    handled on time (及时处置率): resolved by `resolve_by`, among dispatches resolved or past due;
    satisfaction: satisfied callbacks among callbacks on the lead dispatch current when each was made;
    mediation success: agreements among finished mediations of cases dispatched to the committee;
    returns and escalations: counts. Everything counts in the period of its dispatch.
    """
    key = _GROUPS[by]
    return await pool.fetch(
        f"""
        WITH d AS (
            SELECT case_id, data->>'dispatch_id' AS dispatch_id, data->>'unit_id' AS unit_id,
                   coalesce(data->>'role', 'lead') AS role, data->'location'->>'division_code' AS division,
                   (data->>'acknowledge_by')::timestamptz AS ack_by, (data->>'resolve_by')::timestamptz AS res_by,
                   coalesce(broker_time, time) AS at, data->'location'->>'grid_id' AS grid_id,
                   {_CHANNEL if by == "channel" else "NULL::text"} AS channel
            FROM events WHERE type = 'org.onewindow.case.dispatched.v1'
              AND ($2::timestamptz IS NULL OR coalesce(broker_time, time) >= $2)
              AND ($3::timestamptz IS NULL OR coalesce(broker_time, time) < $3)
              AND ($4::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($4::text[]) j
                                                WHERE data->'location'->>'division_code' LIKE j || '%'))),
        -- a department's acceptance and resolution count when the broker took them, not when it says
        fb AS (
            SELECT data->>'dispatch_id' AS dispatch_id,
                   min(coalesce(broker_time, time)) FILTER (WHERE type = 'org.onewindow.dispatch.accepted.v1')
                       AS accepted,
                   min(coalesce(broker_time, time)) FILTER (WHERE type = 'org.onewindow.dispatch.resolved.v1')
                       AS resolved,
                   count(*) FILTER (WHERE type = 'org.onewindow.dispatch.returned.v1') AS returns
            FROM events WHERE type LIKE 'org.onewindow.dispatch.%' GROUP BY 1),
        esc AS (SELECT data->>'dispatch_id' AS dispatch_id, count(*) AS n FROM events
                WHERE type = 'org.onewindow.case.escalated.v1' GROUP BY 1),
        -- a callback judges the lead dispatch current when it was made
        cb AS (SELECT ld.dispatch_id, count(*) AS calls,
                      count(*) FILTER (WHERE (c.data->>'satisfied')::boolean) AS satisfied
               FROM events c CROSS JOIN LATERAL (
                   SELECT e.data->>'dispatch_id' AS dispatch_id FROM events e
                   WHERE e.case_id = c.case_id AND e.type = 'org.onewindow.case.dispatched.v1'
                     AND coalesce(e.data->>'role', 'lead') = 'lead' AND e.seq < c.seq
                   ORDER BY e.seq DESC LIMIT 1) ld
               -- 未接通 is no answer: it counts neither for nor against satisfaction
               WHERE c.type = 'org.onewindow.case.callback_recorded.v1'
                 AND coalesce(c.data->>'outcome', '') <> 'unreachable' GROUP BY 1),
        -- a mediation's outcome counts for the dispatch that sent the case to that committee
        med AS (SELECT case_id, data->>'committee_id' AS unit_id,
                       count(*) FILTER (WHERE data->>'to_status' = 'agreement_reached') AS agreed,
                       count(*) FILTER (WHERE data->>'to_status' IN
                           ('agreement_reached', 'failed', 'withdrawn', 'expired')) AS finished
                FROM events WHERE type = 'org.onewindow.mediation.transitioned.v1'
                  AND data->>'origin' = 'dispatch' GROUP BY 1, 2)
        SELECT {key} AS key, date_trunc($1, d.at AT TIME ZONE 'Asia/Shanghai') AS period, count(*) AS dispatches,
               count(*) FILTER (WHERE fb.accepted <= d.ack_by) AS acknowledged_on_time,
               count(*) FILTER (WHERE fb.accepted IS NOT NULL OR now() > d.ack_by) AS acknowledge_due,
               count(*) FILTER (WHERE fb.resolved <= d.res_by) AS handled_on_time,
               count(*) FILTER (WHERE fb.resolved IS NOT NULL OR now() > d.res_by) AS handle_due,
               coalesce(sum(fb.returns), 0)::bigint AS returns, coalesce(sum(esc.n), 0)::bigint AS escalations,
               coalesce(sum(cb.satisfied), 0)::bigint AS satisfied, coalesce(sum(cb.calls), 0)::bigint AS callbacks,
               coalesce(sum(med.agreed), 0)::bigint AS mediation_agreed,
               coalesce(sum(med.finished), 0)::bigint AS mediation_finished
        FROM d LEFT JOIN fb USING (dispatch_id) LEFT JOIN esc USING (dispatch_id) LEFT JOIN cb USING (dispatch_id)
               LEFT JOIN med ON med.case_id = d.case_id AND med.unit_id = d.unit_id
        {f"WHERE {key} IS NOT NULL" if by in _OPTIONAL_GROUPS else ""}
        GROUP BY 1, 2 ORDER BY 2 DESC, 1
        """,
        period, since, until, jurisdiction,
    )


async def lock_summaries_if_empty(conn: asyncpg.Connection) -> bool:
    """Take the summaries table for the transaction (one instance backfills) and say whether it is empty."""
    await conn.execute("LOCK TABLE case_summaries IN EXCLUSIVE MODE")
    return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM case_summaries)")


# --- 研判 and reports: facts of a county's day, the stored digests ----------------------------------

_AT = "coalesce(e.broker_time, e.time)"  # like the metrics: when the broker took it
_BEIJING_DAY = f"({_AT} AT TIME ZONE 'Asia/Shanghai')::date"


async def digest_facts(db: Db, county: str, since: datetime, until: datetime,
                       baseline_since: datetime) -> dict[str, list]:
    """What a county's daily digest is made of, from the trace by broker time: risk events of the day
    [since, until); cases received per Beijing day and category, and per day and town, from
    `baseline_since`; red clocks and escalations of the day; repeat reports (重复件) per case number,
    that day and in the whole window. Cases are placed by their summary's division."""
    like = county + "%"
    risks = await db.fetch(
        f"SELECT e.type, e.data, {_AT} AS at FROM events e"
        " WHERE e.type IN ('org.onewindow.risk.identified.v1', 'org.onewindow.risk.changed.v1')"
        f" AND {_AT} >= $2 AND {_AT} < $3 AND e.data->>'division_code' LIKE $1 ORDER BY at, e.id",
        like, since, until)
    received = await db.fetch(
        f"SELECT {_BEIJING_DAY} AS day, e.data->>'category' AS category,"
        " CASE WHEN length(e.data->'location'->>'division_code') >= 9"
        "      THEN left(e.data->'location'->>'division_code', 9) END AS town, count(*) AS n"
        " FROM events e WHERE e.type = 'org.onewindow.case.received.v1'"
        f" AND {_AT} >= $2 AND {_AT} < $3 AND e.data->'location'->>'division_code' LIKE $1 GROUP BY 1, 2, 3",
        like, baseline_since, until)
    overdue = await db.fetch(
        "SELECT DISTINCT s.case_number, e.case_id, e.data->>'unit_id' AS unit_id, e.data->>'clock' AS clock"
        " FROM events e JOIN case_summaries s USING (case_id)"
        " WHERE e.type = 'org.onewindow.supervision.notice.v1' AND e.data->>'colour' = 'red'"
        f" AND {_AT} >= $2 AND {_AT} < $3 AND s.division LIKE $1", like, since, until)
    escalated = await db.fetch(
        "SELECT DISTINCT s.case_number, e.case_id, e.data->>'from_unit_id' AS from_unit_id,"
        " e.data->>'to_unit_id' AS to_unit_id FROM events e JOIN case_summaries s USING (case_id)"
        f" WHERE e.type = 'org.onewindow.case.escalated.v1' AND {_AT} >= $2 AND {_AT} < $3 AND s.division LIKE $1",
        like, since, until)
    repeats = await db.fetch(
        f"SELECT s.case_number, count(*) FILTER (WHERE {_AT} >= $2) AS today, count(*) AS window"
        " FROM events e JOIN case_summaries s USING (case_id)"
        f" WHERE e.type = 'org.onewindow.case.duplicate_reported.v1' AND {_AT} >= $4 AND {_AT} < $3"
        " AND s.division LIKE $1 GROUP BY 1", like, since, until, baseline_since)
    # a change names no title: the risk's own, from when it was identified (its trace is keyed by risk id)
    titles = await db.fetch(
        "SELECT DISTINCT ON (case_id) case_id, data->>'title' AS title FROM events"
        " WHERE case_id = ANY($1::text[]) AND type = 'org.onewindow.risk.identified.v1' ORDER BY case_id, id",
        sorted({str(json.loads(r["data"]).get("risk_id")) for r in risks}))
    return {
        "risks": [{"type": r["type"], "data": json.loads(r["data"]), "at": r["at"]} for r in risks],
        "titles": {r["case_id"]: r["title"] for r in titles},
        "categories": [(r["day"], r["category"], r["n"]) for r in received],
        "places": [(r["day"], r["town"], r["n"]) for r in received],
        "overdue": [dict(r) for r in overdue],
        "escalated": [dict(r) for r in escalated],
        "repeats": [dict(r) for r in repeats],
    }


async def counties_with_cases(db: Db) -> list[str]:
    """Every county (6-digit code) some case is placed in: the daily job digests each."""
    rows = await db.fetch("SELECT DISTINCT left(division, 6) AS county FROM case_summaries"
                          " WHERE length(division) >= 6 ORDER BY 1")
    return [r["county"] for r in rows]


async def save_digest(conn: asyncpg.Connection, county: str, day, indicators: str, content: dict) -> bool:
    """Store a county's digest of a day unless one is stored already; True when this call stored it."""
    status = await conn.execute(
        "INSERT INTO digests (county, day, indicators, content) VALUES ($1, $2, $3, $4::jsonb)"
        " ON CONFLICT (county, day) DO NOTHING",
        county, day, indicators, json.dumps(content, ensure_ascii=False, sort_keys=True))
    return status.endswith(" 1")


async def stored_digest(db: Db, county: str, day) -> dict | None:
    """A county's stored digest of a day, if the job made one."""
    raw = await db.fetchval("SELECT content FROM digests WHERE county = $1 AND day = $2", county, day)
    return json.loads(raw) if raw is not None else None


async def digested_days(db: Db, counties: list[str], day) -> set[str]:
    """Which of the counties already have their digest of the day."""
    rows = await db.fetch("SELECT county FROM digests WHERE day = $2 AND county = ANY($1::text[])", counties, day)
    return {r["county"] for r in rows}


_DIVISION_LEVELS = {"county": 6, "town": 9}


async def division_overview(pool: asyncpg.Pool, level: str, jurisdiction: list[str] | None = None
                            ) -> list[asyncpg.Record]:
    """Open cases per county or town (from the summaries): how many, how many overdue, how many at
    orange or red risk. Closed, refused and merged cases are not open."""
    return await pool.fetch(
        "SELECT left(division, $1) AS code, count(*) AS open,"
        "       count(*) FILTER (WHERE overdue) AS overdue,"
        "       count(*) FILTER (WHERE risk_colour IN ('orange', 'red')) AS high_risk,"
        "       count(*) FILTER (WHERE risk_colour = 'red') AS red_risk"
        " FROM case_summaries WHERE division IS NOT NULL AND length(division) >= $1"
        "   AND status NOT IN ('closed', 'refused', 'merged')"
        "   AND ($2::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($2::text[]) j WHERE division LIKE j || '%'))"
        " GROUP BY 1 ORDER BY 1", _DIVISION_LEVELS[level], jurisdiction)


_RECEIVED = "org.onewindow.case.received.v1"
_CLOSED = ("org.onewindow.case.closed.v1", "org.onewindow.case.closed_directly.v1", "org.onewindow.case.refused.v1")


async def daily_trend(pool: asyncpg.Pool, by: str, since, until, jurisdiction: list[str] | None = None
                      ) -> list[asyncpg.Record]:
    """Cases received and closed (办结, 直接办结, 不予受理) per day in Beijing time, by category (the
    case's current one) or by channel (the one it came in by), within the jurisdiction."""
    key = "s.category" if by == "category" else "r.data->>'channel'"
    return await pool.fetch(
        f"SELECT (e.time AT TIME ZONE 'Asia/Shanghai')::date AS day,"
        f"       CASE WHEN e.type = $1 THEN 'received' ELSE 'closed' END AS flow,"
        f"       coalesce({key}, 'unknown') AS key, count(*) AS cases"
        " FROM events e JOIN case_summaries s ON s.case_id = e.case_id"
        # the received event need not be the case's first record (topics are consumed independently)
        "  LEFT JOIN LATERAL (SELECT data FROM events WHERE case_id = e.case_id AND type = $1 LIMIT 1) r ON true"
        " WHERE (e.type = $1 OR e.type = ANY($2::text[])) AND e.time >= $3 AND e.time < $4"
        "   AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) j WHERE s.division LIKE j || '%'))"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", _RECEIVED, list(_CLOSED), since, until, jurisdiction)

