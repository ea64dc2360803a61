"""Audit's handlers: Kafka batches into the trace, and the HTTP query API."""

from __future__ import annotations

import json

import asyncpg
import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from services.audit import domain, storage, verification
from shared import topics
from shared.http import Problem, may_act_in, require_roles
from shared.messaging.consumer import Inbound
from shared.messaging.outbox import Outgoing
from shared.settings import Settings, TokenGrant
from shared.telemetry import trace_id_of

CONSOLE = Path(__file__).parent / "console" / "index.html"


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
        rows.append((record, data_json, prev, h))
        heads[ev.subject] = (record.seq, h)
        summary = summaries.get(ev.subject) or domain.CaseSummary(case_id=ev.subject)
        summaries[ev.subject] = domain.fold(summary, ev.type, ev.data if isinstance(ev.data, dict) else {}, ev.time)
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


# Roles that see personal data in the trace (auditors adjudicate complaints about the record itself);
# everyone else who may read the trace sees it masked.
PERSONAL_DATA_ROLES = {"auditor"}
CaseStatus = Literal["received", "court_referral", "routed", "manual_triage", "dispatched", "accepted",
                     "in_progress", "resolved", "returned", "transferred", "reopened", "closed"]


def may_see(grant: TokenGrant, division: str | None) -> bool:
    """Whether a grant's jurisdiction covers a case's division (cases without one: only "*")."""
    return "*" in grant.divisions or (division is not None and may_act_in(grant, division))


def summary_json(s: domain.CaseSummary) -> dict:
    """A case summary as the API shows it."""
    iso = lambda t: t.isoformat() if t else None  # noqa: E731
    return {
        "case_id": s.case_id, "case_number": s.case_number, "division": s.division, "category": s.category,
        "risk_colour": s.risk_colour, "status": s.status,
        "holder": {"unit_id": s.holder_unit_id, "since": iso(s.holder_since)},
        "units": s.units or [], "supervision": s.supervision, "overdue": s.overdue,
        "escalations": s.escalations, "returns": s.returns, "mediation_status": s.mediation_status,
        "opened_at": iso(s.opened_at), "last_event_at": iso(s.last_event_at), "last_type": s.last_type,
        "events": s.events,
    }


def build_router(settings: Settings) -> APIRouter:
    """Audit's query API (operators and auditors)."""
    router = APIRouter(prefix="/v1")
    readers = require_roles(settings, "operator", "auditor")

    @router.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        """The operator console (a static page; every data call it makes carries the operator's token)."""
        return HTMLResponse(CONSOLE.read_text(encoding="utf-8"))

    async def visible_summary(request: Request, case_id: str, grant: TokenGrant) -> domain.CaseSummary:
        """The case's summary if the grant's jurisdiction covers it; 404 otherwise (no existence leak)."""
        async with request.app.state.runtime.pool.acquire() as conn:
            summary = (await storage.load_summaries(conn, [case_id])).get(case_id)
        if summary is None or not may_see(grant, summary.division):
            raise Problem(404, "No trace for this case")
        return summary

    async def check_visible(request: Request, case_id: str, grant: TokenGrant) -> None:
        """A grant limited to some divisions reads only their cases (the summary says where a case is)."""
        if "*" not in grant.divisions:
            await visible_summary(request, case_id, grant)

    @router.get("/cases/{case_id}", summary="Where a case is now: holder, status, supervision colour")
    async def case_summary(case_id: str, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        return summary_json(await visible_summary(request, case_id, grant))

    @router.get("/cases/{case_id}/timeline", summary="A case's events in order")
    async def case_timeline(case_id: str, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        await check_visible(request, case_id, grant)
        records = await storage.timeline(request.app.state.runtime.pool, case_id)
        if not records:
            raise Problem(404, "No trace for this case")
        personal = grant.role in PERSONAL_DATA_ROLES
        return {
            "case_id": case_id,
            "personal_data": "shown" if personal else "masked",
            "events": [
                {
                    "seq": r.seq, "type": r.type, "time": r.time.isoformat(), "source": r.source,
                    "event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.kafka_offset,
                    "trace_id": r.trace_id, "data": r.data if personal else domain.mask_personal(r.data),
                }
                for r in records
            ],
        }

    @router.get("/cases", summary="Search cases: number, division, unit, holder, category, status, risk, "
                                  "supervision colour, overdue, escalated, opening date")
    async def search_cases(
        request: Request,
        grant: TokenGrant = Depends(readers),
        case_number: str | None = Query(None, max_length=64),
        division: str | None = Query(None, pattern=r"^\d{4,12}$", description="a code and all below it"),
        unit_id: str | None = Query(None, max_length=64, description="any unit the case was dispatched to"),
        holder: str | None = Query(None, max_length=64, description="the unit leading the case now"),
        category: str | None = Query(None, max_length=64),
        status: CaseStatus | None = None,
        risk_colour: Literal["green", "yellow", "orange", "red"] | None = None,
        supervision: Literal["white", "yellow", "red"] | None = None,
        overdue: bool | None = None,
        escalated: bool | None = None,
        since: datetime | None = Query(None, description="opened at or after"),
        until: datetime | None = Query(None, description="opened before"),
        limit: int = Query(50, ge=1, le=500),
    ) -> dict:
        if since and until and since >= until:
            raise Problem(422, "Invalid date range", "since must be before until")
        rows = await storage.search(
            request.app.state.runtime.pool, case_number=case_number, division=division, unit_id=unit_id,
            holder_unit_id=holder, category=category, status=status, risk_colour=risk_colour,
            supervision=supervision, overdue=overdue, escalated=escalated, since=since, until=until,
            jurisdiction=None if "*" in grant.divisions else grant.divisions, limit=limit)
        return {"cases": [summary_json(storage.summary_of(r)) for r in rows]}

    @router.get("/dead-letters", summary="Records a consumer could not process", dependencies=[Depends(readers)])
    async def dead_letters(request: Request, limit: int = Query(100, ge=1, le=1000),
                           grant: TokenGrant = Depends(readers)) -> dict:
        rows = await storage.dead_letters(request.app.state.runtime.pool, limit)
        personal = grant.role in PERSONAL_DATA_ROLES
        # an error message may quote the refused input
        return {"dead_letters": [{**dict(r), "key": (r["key"] or b"").decode(errors="replace"),
                                  "error": r["error"] if personal or not r["error"] else domain.mask_text(r["error"]),
                                  "recorded_at": r["recorded_at"].isoformat()} for r in rows]}

    @router.get("/metrics", summary="On-time, satisfaction, mediation, returns, escalations; with rankings",
                dependencies=[Depends(readers)])
    async def metrics(
        request: Request,
        by: Literal["unit", "town", "county"] = "unit",
        period: Literal["month", "quarter"] = "month",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict:
        rows = await storage.metrics(request.app.state.runtime.pool, by, period, since, until)
        figures = domain.figures([dict(r) for r in rows])
        return {"by": by, "period": period, "figures": figures, "ranking": domain.ranking(figures)}

    @router.get("/events/stream", summary="Live feed (server-sent events) of newly recorded events",
                dependencies=[Depends(readers)])
    async def stream(request: Request, after_id: int | None = Query(None, ge=0)) -> StreamingResponse:
        pool = request.app.state.runtime.pool

        async def events():
            last = after_id if after_id is not None else (await pool.fetchval("SELECT max(id) FROM events") or 0)
            deadline = time.monotonic() + 600  # a feed reconnects every ten minutes at most
            while time.monotonic() < deadline and not await request.is_disconnected():
                rows = await pool.fetch("SELECT id, case_id, type, time, data FROM events WHERE id > $1"
                                        " ORDER BY id LIMIT 200", last)
                for r in rows:
                    last = r["id"]
                    data = json.loads(r["data"])
                    item = {"id": r["id"], "case_id": r["case_id"], "type": r["type"], "time": r["time"].isoformat(),
                            "case_number": data.get("case_number"), "unit_id": data.get("unit_id"),
                            "clock": data.get("clock"), "colour": data.get("colour")}
                    yield f"id: {r['id']}\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
                if not rows:
                    yield ": keep-alive\n\n"
                    await asyncio.sleep(0.5)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @router.get("/verify", summary="Recompute every chain and checkpoint", dependencies=[Depends(readers)])
    async def verify_store(request: Request) -> dict:
        async with request.app.state.runtime.pool.acquire() as conn:
            return await verification.verify(conn, settings.audit_signing_key.get_secret_value().encode())

    @router.get("/cases/{case_id}/verify", summary="Recompute a case's hash chain")
    async def verify_case(case_id: str, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        await check_visible(request, case_id, grant)
        chain = await storage.chain(request.app.state.runtime.pool, case_id)
        if not chain:
            raise Problem(404, "No trace for this case")
        broken = domain.first_broken(chain)
        return {"case_id": case_id, "records": len(chain), "intact": broken is None, "first_broken_seq": broken}

    return router
