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
from shared.http import Problem, require_roles
from shared.messaging.consumer import Inbound
from shared.messaging.outbox import Outgoing
from shared.settings import Settings
from shared.telemetry import trace_id_of

TRACED_TOPICS = topics.CASE_TOPICS
CONSOLE = Path(__file__).parent / "console" / "index.html"


async def record_events(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Append each new event to its case's chain (one head read, one COPY per batch)."""
    heads = await storage.chain_heads(conn, {i.event.subject for i in items})
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
    await storage.append_events(conn, rows)
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


def build_router(settings: Settings) -> APIRouter:
    """Audit's query API (operators and auditors)."""
    router = APIRouter(prefix="/v1")
    readers = require_roles(settings, "operator", "auditor")

    @router.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        """The operator console (a static page; every data call it makes carries the operator's token)."""
        return HTMLResponse(CONSOLE.read_text(encoding="utf-8"))

    @router.get("/cases/{case_id}/timeline", summary="A case's events in order", dependencies=[Depends(readers)])
    async def case_timeline(case_id: str, request: Request) -> dict:
        records = await storage.timeline(request.app.state.runtime.pool, case_id)
        if not records:
            raise Problem(404, "No trace for this case")
        return {
            "case_id": case_id,
            "events": [
                {
                    "seq": r.seq, "type": r.type, "time": r.time.isoformat(), "source": r.source,
                    "event_id": r.event_id, "topic": r.topic, "trace_id": r.trace_id, "data": r.data,
                }
                for r in records
            ],
        }

    @router.get("/cases", summary="Search cases by their trace", dependencies=[Depends(readers)])
    async def search_cases(
        request: Request,
        case_number: str | None = Query(None, max_length=64),
        division: str | None = Query(None, pattern=r"^\d{4,12}$"),
        event_type: str | None = Query(None, max_length=128),
        unit_id: str | None = Query(None, max_length=64),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = Query(50, ge=1, le=500),
    ) -> dict:
        rows = await storage.search(request.app.state.runtime.pool, case_number=case_number, division=division,
                                    event_type=event_type, unit_id=unit_id, since=since, until=until, limit=limit)
        return {"cases": [{**dict(r), "last_time": r["last_time"].isoformat()} for r in rows]}

    @router.get("/dead-letters", summary="Records a consumer could not process", dependencies=[Depends(readers)])
    async def dead_letters(request: Request, limit: int = Query(100, ge=1, le=1000)) -> dict:
        rows = await storage.dead_letters(request.app.state.runtime.pool, limit)
        return {"dead_letters": [{**dict(r), "key": (r["key"] or b"").decode(errors="replace"),
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
        ratio = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
        figures = [{
            "key": r["key"], "period": r["period"].date().isoformat(), "dispatches": r["dispatches"],
            "acknowledged_on_time_rate": ratio(r["acknowledged_on_time"], r["acknowledge_due"]),
            "handled_on_time_rate": ratio(r["handled_on_time"], r["handle_due"]),
            "satisfaction_rate": ratio(r["satisfied"], r["callbacks"]),
            "mediation_success_rate": ratio(r["mediation_agreed"], r["mediation_finished"]),
            "returns": r["returns"], "escalations": r["escalations"],
        } for r in rows]
        ranked = sorted((f for f in figures if f["handled_on_time_rate"] is not None),
                        key=lambda f: (-f["handled_on_time_rate"], -(f["satisfaction_rate"] or 0), f["key"]))
        return {"by": by, "period": period, "figures": figures,
                "ranking": [{"rank": i + 1, "key": f["key"], "period": f["period"],
                             "handled_on_time_rate": f["handled_on_time_rate"]} for i, f in enumerate(ranked)]}

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

    @router.get("/cases/{case_id}/verify", summary="Recompute a case's hash chain", dependencies=[Depends(readers)])
    async def verify_case(case_id: str, request: Request) -> dict:
        chain = await storage.chain(request.app.state.runtime.pool, case_id)
        if not chain:
            raise Problem(404, "No trace for this case")
        broken = domain.first_broken(chain)
        return {"case_id": case_id, "records": len(chain), "intact": broken is None, "first_broken_seq": broken}

    return router
