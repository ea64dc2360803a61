"""Audit's HTTP API (operators and auditors): case summaries, search, timelines, dead letters,
command-centre metrics, the live feed, verification, and the operator console."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from services.audit import domain, handlers, storage
from shared.http import Problem, may_act_in, require_roles
from shared.identity import TokenGrant
from shared.settings import Settings

CONSOLE = Path(__file__).parent / "console" / "index.html"
# Roles that see personal data in the trace (auditors adjudicate complaints about the record itself);
# everyone else who may read the trace sees it masked.
PERSONAL_DATA_ROLES = {"auditor"}


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


def record_json(r: domain.TraceRecord, personal: bool) -> dict:
    """A timeline entry as the API shows it (personal data masked unless the role may see it)."""
    return {"seq": r.seq, "type": r.type, "time": r.time.isoformat(), "source": r.source,
            "event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.kafka_offset,
            "trace_id": r.trace_id, "data": r.data if personal else domain.mask_personal(r.data)}


def feed_item(r) -> dict:
    """A recorded event as the live feed shows it: what the console's ticker needs, no personal data."""
    data = json.loads(r["data"])
    data = data if isinstance(data, dict) else {}
    return {"id": r["id"], "case_id": r["case_id"], "type": r["type"], "time": r["time"].isoformat(),
            "case_number": data.get("case_number"), "unit_id": data.get("unit_id"),
            "clock": data.get("clock"), "colour": data.get("colour")}


def jurisdiction(grant: TokenGrant) -> list[str] | None:
    """The division prefixes a grant may read, or None for city-wide grants ("*")."""
    return None if "*" in grant.divisions else list(grant.divisions)


def build_router(settings: Settings) -> APIRouter:
    """Audit's query API (operators and auditors)."""
    router = APIRouter(prefix="/v1")
    readers = require_roles(settings, "operator", "auditor")
    key = settings.signing_key()

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
        return {"case_id": case_id, "personal_data": "shown" if personal else "masked",
                "events": [record_json(r, personal) for r in records]}

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
        status: domain.CaseStatus | None = None,
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
            jurisdiction=jurisdiction(grant), limit=limit)
        return {"cases": [summary_json(storage.summary_of(r)) for r in rows]}

    @router.get("/dead-letters", summary="Records a consumer could not process")
    async def dead_letters(request: Request, limit: int = Query(100, ge=1, le=1000),
                           grant: TokenGrant = Depends(readers)) -> dict:
        if jurisdiction(grant) is not None:  # raw records name no division: city-wide grants only
            raise Problem(403, "Forbidden", "dead letters are for city-wide operators and auditors")
        rows = await storage.dead_letters(request.app.state.runtime.pool, limit)
        personal = grant.role in PERSONAL_DATA_ROLES
        # an error message may quote the refused input
        return {"dead_letters": [{**dict(r), "key": (r["key"] or b"").decode(errors="replace"),
                                  "error": r["error"] if personal or not r["error"] else domain.mask_text(r["error"]),
                                  "recorded_at": r["recorded_at"].isoformat()} for r in rows]}

    @router.get("/metrics", summary="On-time, satisfaction, mediation, returns, escalations; with rankings")
    async def metrics(
        request: Request,
        grant: TokenGrant = Depends(readers),
        by: Literal["unit", "town", "county"] = "unit",
        period: Literal["month", "quarter"] = "month",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict:
        rows = await storage.metrics(request.app.state.runtime.pool, by, period, since, until, jurisdiction(grant))
        figures = domain.figures([dict(r) for r in rows])
        return {"by": by, "period": period, "figures": figures, "ranking": domain.ranking(figures)}

    @router.get("/events/stream", summary="Live feed (server-sent events) of newly recorded events")
    async def stream(request: Request, after_id: int | None = Query(None, ge=0),
                     grant: TokenGrant = Depends(readers)) -> StreamingResponse:
        pool = request.app.state.runtime.pool
        scope = jurisdiction(grant)

        async def events():
            last = after_id if after_id is not None else (await storage.last_event_id(pool) or 0)
            deadline = time.monotonic() + 600  # a feed reconnects every ten minutes at most
            while time.monotonic() < deadline and not await request.is_disconnected():
                rows = await storage.feed(pool, last, 200, scope)
                for r in rows:
                    last = r["id"]
                    yield f"id: {r['id']}\ndata: {json.dumps(feed_item(r), ensure_ascii=False)}\n\n"
                if not rows:
                    yield ": keep-alive\n\n"
                    await asyncio.sleep(0.5)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @router.get("/verify", summary="Recompute every chain and checkpoint (auditors: the whole store)",
                dependencies=[Depends(require_roles(settings, "auditor"))])
    async def verify_store(request: Request) -> dict:
        async with request.app.state.runtime.pool.acquire() as conn:
            return await handlers.verify(conn, key)

    @router.get("/cases/{case_id}/verify", summary="Recompute a case's hash chain")
    async def verify_case(case_id: str, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        await check_visible(request, case_id, grant)
        chain = await storage.chain(request.app.state.runtime.pool, case_id)
        if not chain:
            raise Problem(404, "No trace for this case")
        broken = domain.first_broken(chain)
        return {"case_id": case_id, "records": len(chain), "intact": broken is None, "first_broken_seq": broken}

    return router
