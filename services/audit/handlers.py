"""Audit's handlers: Kafka batches into the trace and the dead-letter record, and the acts over the
stored trace (chained signed checkpoints, verification inline or as a background job, the one-off
summary backfill); each loads, lets the domain decide, and saves. Audit takes every event type as it
comes, so it has no event map."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal

import asyncpg

from services.audit import domain, reports, storage
from shared.divisions import load_divisions
from shared.messaging.consumer import Inbound
from shared import topics
from shared.cloudevents import Actor, derive_id
from shared.contracts.events import DigestPublished
from shared.messaging.outbox import Emitter, Outgoing, add_to_outbox
from shared.telemetry import trace_id_of

log = logging.getLogger(__name__)


def _as_dict(data: object) -> dict:
    # a summary folds only object data; anything else still counts as an event
    return data if isinstance(data, dict) else {}


def broker_time(record) -> datetime | None:
    """When the broker took the record (Kafka's timestamp in ms), or None when it carries none."""
    ms = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int) and ms > 0 else None


@lru_cache(maxsize=4096)
def _actor_json(actor: Actor | None) -> bytes | None:
    # the few actors of a batch (services, a unit's staff) are encoded once each
    return None if actor is None else domain.canonical_json(actor.as_json())


def trace_batch(heads: dict[str, tuple[int, bytes]], summaries: dict[str, domain.CaseSummary],
                items: list[Inbound]) -> tuple[list[domain.NewRecord], dict[str, domain.CaseSummary]]:
    """A batch's records and changed summaries, in Python (no I/O): each event is chained after its
    case's head and folded into its case's summary, in the order of arrival. `heads` moves on to the
    new records; `summaries` (the stored ones) are folded in place. A risk of the register has its
    own chain in the trace (keyed by its risk id) but is no case: it gets no summary."""
    rows = []
    changed: dict[str, domain.CaseSummary] = {}
    append, fold = domain.append, domain.fold
    for item in items:
        ev, rec = item.event, item.record
        case_id = ev.subject
        rows.append(append(heads, case_id, ev.id, ev.source, ev.type, ev.time, rec.topic, rec.partition, rec.offset,
                           trace_id_of(ev.traceparent), ev.data, _actor_json(ev.actor), broker_time(rec)))
        if rec.topic == topics.RISK_EVENTS:
            continue
        summary = changed.get(case_id) or summaries.get(case_id) or domain.CaseSummary(case_id=case_id)
        changed[case_id] = fold(summary, ev.type, _as_dict(ev.data), ev.time)
    return rows, changed


async def record_events(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Append each new event to its case's chain and fold it into the case's summary. Per batch one
    read of the chain heads and summaries, then the records and the summaries (each case's folded
    once over its events of the batch) in one statement, or for a large batch one COPY and one upsert."""
    heads, summaries = await storage.heads_and_summaries(conn, {i.event.subject: None for i in items})
    rows, changed = trace_batch(heads, summaries, items)
    await storage.record(conn, rows, list(changed.values()))
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
    """Sign the heads of all chains as they are now, linked to the checkpoint before (None when there is
    nothing new since the last one)."""
    await storage.lock_checkpoints(conn)
    top = await storage.last_event_id(conn)
    if top is None:
        return None
    covered = await storage.last_checkpoint_up_to(conn)
    if covered is not None and covered >= top:
        return None
    heads = await storage.all_heads(conn, top)
    events = await storage.count_events(conn, top)
    cp = domain.next_checkpoint(await storage.last_checkpoint(conn), heads, events, top, await storage.now(conn),
                                key, key_id)
    await storage.insert_checkpoint(conn, cp)
    return {"cases": cp.cases, "events": events, "up_to_id": top, "seq": cp.seq}


async def verify(conn: asyncpg.Connection, key: bytes, case_id: str | None = None, *,
                 checkpoint_seconds: float = 300.0) -> dict:
    """Verify the trace: every chain (or one case's), the chain of checkpoints, the append-only
    triggers, and that checkpoints keep up with the events. Run it in one repeatable-read transaction.

    The whole store also recomputes every checkpoint's heads and counts the events each covered; one
    case's verification (bounded) looks up the last event each checkpoint covered and counts only the
    newest checkpoint's. `intact` is true when nothing was found; `findings` says what was.
    """
    checked_at = await storage.now(conn)
    broken, records = [], 0
    cases = [case_id] if case_id else await storage.case_ids(conn)
    for cid in cases:
        chain = await storage.chain(conn, cid)
        records += len(chain)
        first = domain.first_broken(chain)
        if first is not None:
            broken.append({"case_id": cid, "first_broken_seq": first})
    findings = [domain.chain_finding(b["case_id"], b["first_broken_seq"]) for b in broken]

    checkpoints = await storage.checkpoints(conn)
    findings += domain.checkpoint_findings(checkpoints, key)
    failing = {f["checkpoint_id"] for f in findings if f["kind"] == "checkpoint_forged"}
    genuine = [cp for cp in checkpoints if cp.id not in failing]
    newest = domain.newest(genuine)
    if case_id is None:  # every checkpoint recomputed: its chains' heads and the events it covered
        for cp in genuine:
            if f := domain.heads_finding(cp, await storage.all_heads(conn, cp.up_to_id)):
                findings.append(f)
                failing.add(cp.id)
            if f := domain.missing_events_finding(cp, await storage.count_events(conn, cp.up_to_id)):
                findings.append(f)
    else:  # bounded: the last event each checkpoint covered is still there, and all those of the newest
        gone = await storage.absent_events(conn, [cp.up_to_id for cp in genuine])
        findings += [domain.covered_event_gone(cp) for cp in genuine if cp.up_to_id in gone]
        if newest is not None and newest.up_to_id not in gone:
            if f := domain.missing_events_finding(newest, await storage.count_events(conn, newest.up_to_id)):
                findings.append(f)
    first_uncovered = await storage.first_event_after(conn, newest.up_to_id if newest else 0)
    if f := domain.uncovered_finding(newest, first_uncovered, checked_at, checkpoint_seconds):
        findings.append(f)
    guards = await storage.guards(conn, {table for table, _ in domain.APPEND_ONLY_GUARDS})
    findings += domain.guard_findings(guards)

    result = {"intact": not findings, "findings": findings, "checked_at": checked_at.isoformat()}
    store = {"checkpoints": len(checkpoints), "guards": len(domain.APPEND_ONLY_GUARDS)}
    if case_id is not None:
        first = broken[0]["first_broken_seq"] if broken else None
        return {"case_id": case_id, "records": records, "chain_intact": not broken, "first_broken_seq": first,
                **result, "counts": {"records": records, **store}}
    return {**result, "counts": {"cases": len(cases), "events": records, **store}, "broken": broken,
            "checkpoints_failing": sorted(failing)}


@dataclass
class VerificationJob:
    """A whole-store verification running in the background, and its result once done."""

    id: str
    requested_by: str
    started_at: datetime
    status: Literal["running", "done", "failed", "cancelled"] = "running"
    finished_at: datetime | None = None
    result: dict | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def as_json(self) -> dict:
        """The job as the API shows it."""
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"id": self.id, "status": self.status, "requested_by": self.requested_by,
                "started_at": iso(self.started_at), "finished_at": iso(self.finished_at), "result": self.result}


class VerificationJobs:
    """Whole-store verifications, one at a time per process, kept in its memory (the latest `keep`)."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self.jobs: dict[str, VerificationJob] = {}

    def running(self) -> VerificationJob | None:
        """The job running now, if any."""
        return next((j for j in self.jobs.values() if j.status == "running"), None)

    def get(self, job_id: str) -> VerificationJob | None:
        """A job by id (None when unknown or long forgotten)."""
        return self.jobs.get(job_id)

    def start(self, pool: asyncpg.Pool, key: bytes, checkpoint_seconds: float,
              requested_by: str) -> VerificationJob | None:
        """Start verifying the whole store in the background; None while another job runs."""
        if self.running() is not None:
            return None
        job = VerificationJob(id=str(uuid.uuid4()), requested_by=requested_by, started_at=datetime.now(UTC))
        self.jobs[job.id] = job
        for old in list(self.jobs)[:-self.keep]:
            del self.jobs[old]
        job.task = asyncio.create_task(self._run(job, pool, key, checkpoint_seconds), name=f"verification-{job.id}")
        return job

    async def _run(self, job: VerificationJob, pool: asyncpg.Pool, key: bytes, checkpoint_seconds: float) -> None:
        try:
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                job.result = await verify(conn, key, checkpoint_seconds=checkpoint_seconds)
            job.status = "done"
        except asyncio.CancelledError:
            job.status = "cancelled"
            raise
        except Exception:
            log.exception("verification failed", extra={"job": job.id})
            job.status = "failed"
        finally:
            job.finished_at = datetime.now(UTC)
            job.task = None

    async def cancel(self) -> None:
        """Stop a running job (the process stops: its connection goes back before the pool closes)."""
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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


# ---------------------------------------------------------------- 研判 and reports


def _division_name(code: str) -> str:
    division = load_divisions().get(code)
    return division.name if division else code


async def make_digest(db: storage.Db, county: str, day: date, scheme: reports.Indicators) -> dict:
    """A county's 日研判 of a Beijing day, from what the trace holds for it."""
    since = reports.period_of("daily", day.isoformat()).since
    facts = await storage.digest_facts(db, county, since, since + timedelta(days=1),
                                       since - timedelta(days=scheme.digest.baseline_days))
    content = reports.digest(county, _division_name(county), day, facts, scheme.digest)
    codes = {r["division_code"] for r in content["new_risks"] + content["rising_risks"]}
    codes |= {t["key"] for t in content["places_up"]}
    return {**content, "names": _names(codes)}


def _names(codes) -> dict[str, str]:
    directory = load_divisions()
    return {c: d.name for c in codes if isinstance(c, str) and (d := directory.get(c))}


async def make_report(db: storage.Db, period: reports.Period, division: str,
                      scheme: reports.Indicators) -> reports.Report:
    """A monthly or quarterly report of a division: the metrics query per unit, town and grid for the
    period, within the division (the same rows `GET /v1/metrics` answers), assessed."""
    levels = {}
    for level in reports.LEVELS:
        rows = await storage.metrics(db, level, period.bucket, period.since, period.until, [division])
        levels[level] = domain.figures([dict(r) for r in rows])
    towns = {x["key"] for x in levels["town"]}
    return reports.report(division, _division_name(division), period, levels, scheme, _names(towns))


def digest_published(content: dict, scheme: reports.Indicators) -> Emitter:
    """The event that a county's digest was made (its id derived from county and day: a replay or a
    second process yields the same id)."""
    county, day = content["county"], content["day"]
    digest_id = derive_id("daily-digest", county, day)
    emitter = Emitter(topics.service_source("audit"))
    emitter.emit(topics.DIGESTS, DigestPublished(
        digest_id=digest_id, division_code=county, day=day, indicators=scheme.version, received=content["received"],
        new_risk_ids=[r["risk_id"] for r in content["new_risks"]],
        rising_risk_ids=[r["risk_id"] for r in content["rising_risks"]],
        categories_up=[t["key"] for t in content["categories_up"]],
        places_up=[t["key"] for t in content["places_up"]],
        overdue=len(content["overdue"]), escalated=len(content["escalated"]),
        repeat_reports=len(content["repeat_reports"]),
        page=f"/v1/reports/daily?division={county}&day={day}"), event_id=digest_id, traceparent=None)
    return emitter


async def daily_digests(pool: asyncpg.Pool, now: datetime, scheme: reports.Indicators,
                        catch_up_days: int = 3) -> int:
    """The scheduled 日研判: each county's digest of the last whole Beijing day, and of the days before
    it (up to `catch_up_days` in all) that no process digested while audit was down; each made once
    (the table's key decides between restarts and several audit processes). Returns how many this
    call stored."""
    last = reports.previous_day(now)
    counties = await storage.counties_with_cases(pool)
    stored = 0
    for day in sorted(last - timedelta(days=i) for i in range(catch_up_days)):
        stored += await _digest_day(pool, counties, day, scheme)
    return stored


async def _digest_day(pool: asyncpg.Pool, counties: list[str], day: date, scheme: reports.Indicators) -> int:
    done = await storage.digested_days(pool, counties, day)
    stored = 0
    for county in counties:
        if county in done:
            continue
        # read committed: a concurrent process's INSERT of the same key makes ours do nothing (a
        # repeatable-read transaction would fail on it instead)
        async with pool.acquire() as conn, conn.transaction():
            content = await make_digest(conn, county, day, scheme)
            if await storage.save_digest(conn, county, day, scheme.version, content):
                # the event with the row (outbox): published once the digest is durable, never without it
                await add_to_outbox(conn, digest_published(content, scheme).out)
                stored += 1
    if stored:
        log.info("daily digests stored", extra={"day": day.isoformat(), "counties": stored})
    return stored
