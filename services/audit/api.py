"""Audit's HTTP API (operators and auditors): case summaries, search, timelines, dead letters,
command-centre metrics, the live feed (capped), verification (one case inline, the whole store as a
background job for auditors), and the operator console."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from services.audit import domain, handlers, reports, storage
from shared.divisions import load_divisions
from shared.http import Problem, jurisdiction, may_act_in, require_roles
from shared.identity import TokenGrant
from shared.refusals import Overloaded
from shared.settings import Settings

CONSOLE = Path(__file__).parent / "console"
# The console's files (a whitelist: nothing else under the directory is served) and their types.
CONSOLE_FILES = {"app.js": "text/javascript", "app.css": "text/css", "vendor/echarts.min.js": "text/javascript"}
DIVISION_SHAPES = Path(__file__).parents[2] / "shared" / "reference" / "divisions.geojson"
BEIJING = ZoneInfo("Asia/Shanghai")
TREND_MAX_DAYS = 366
# Roles that see personal data in the trace (auditors adjudicate complaints about the record itself);
# everyone else who may read the trace sees it masked.
PERSONAL_DATA_ROLES = {"auditor"}
FEED_RETRY_AFTER_SECONDS = 5  # what a client over the feed cap is told to wait


class FeedSlots:
    """The live feeds this process serves at once, up to a cap."""

    def __init__(self, cap: int) -> None:
        self.cap, self.open = cap, 0

    def take(self) -> bool:
        """Take a slot; False when all are taken."""
        if self.open >= self.cap:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.open -= 1


class _Feed(StreamingResponse):
    """A live feed that gives its slot back however the stream ends (done, disconnected, cancelled)."""

    def __init__(self, content, slots: FeedSlots, **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.slots = slots

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.release()


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
        "events": s.events, "merged_into": s.merged_into,
    }


def record_json(r: domain.TraceRecord, personal: bool, grid_ids: bool = False) -> dict:
    """A timeline entry as the API shows it (personal data masked unless the role may see it; grid
    ids whole for `grid_ids`: an operator of the case's jurisdiction works with the grids)."""
    return {"seq": r.seq, "case_id": r.case_id, "type": r.type, "time": r.time.isoformat(), "source": r.source,
            "event_id": r.event_id, "topic": r.topic, "partition": r.partition, "offset": r.kafka_offset,
            "trace_id": r.trace_id, "actor": r.actor,
            "data": r.data if personal else domain.mask_personal(
                r.data, keep=domain.GRID_KEYS if grid_ids else frozenset())}


def feed_item(r) -> dict:
    """A recorded event as the live feed shows it: what the console's ticker needs, no personal data."""
    data = json.loads(r["data"])
    data = data if isinstance(data, dict) else {}
    return {"id": r["id"], "case_id": r["case_id"], "type": r["type"], "time": r["time"].isoformat(),
            "case_number": data.get("case_number"), "unit_id": data.get("unit_id"),
            "clock": data.get("clock"), "colour": data.get("colour")}


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url) if url else None
    return f"{parts.scheme}://{parts.netloc}" if parts and parts.scheme and parts.netloc else None


def console_headers(settings: Settings) -> dict[str, str]:
    """The page's headers: scripts only from audit itself; data only from audit, router, intake and
    the identity provider; never framed or sniffed; no referrer (its URL may carry a sign-in code)."""
    talks_to = {_origin(u) for u in (settings.console_router_url, settings.console_intake_url,
                                     settings.console_oidc_token_endpoint, settings.auth_issuer)} - {None}
    connect = " ".join(["'self'", *sorted(talks_to)])
    policy = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
              f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


def console_config_of(settings: Settings) -> dict:
    """What the console's page needs to know: the services' base URLs as a browser reaches them
    (None: the same origin as audit), Jaeger, and the sign-in available."""
    return {
        "services": {"router": settings.console_router_url, "intake": settings.console_intake_url},
        "jaeger_url": settings.console_jaeger_url,
        "signin": {
            "oidc": None if not settings.console_oidc_client_id else {
                "issuer": settings.auth_issuer, "client_id": settings.console_oidc_client_id,
                "authorization_endpoint": settings.console_oidc_authorization_endpoint,
                "token_endpoint": settings.console_oidc_token_endpoint},
            "dev_token": settings.console_dev_signin,
        },
    }


def build_router(settings: Settings, verifications: handlers.VerificationJobs | None = None) -> APIRouter:
    """Audit's query API (operators and auditors); `verifications` holds the whole-store jobs."""
    router = APIRouter(prefix="/v1")
    readers = require_roles(settings, "operator", "auditor")
    auditors = require_roles(settings, "auditor")
    key = settings.signing_key()
    feeds = FeedSlots(settings.feed_max_connections)
    verifications = verifications if verifications is not None else handlers.VerificationJobs()
    page_headers = console_headers(settings)
    directory = load_divisions()  # read once: master data changes with a release
    division_list = {"version": directory.version,
                     "divisions": [{"code": d.code, "name": d.name, "level": d.level} for d in directory.division]}

    @router.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        """The operator console (a static page; every data call it makes carries the operator's token)."""
        return HTMLResponse((CONSOLE / "index.html").read_text(encoding="utf-8"), headers=page_headers)

    @router.get("/console/config.json", include_in_schema=False)
    async def console_config() -> dict:
        """Where the console finds the other services and how it signs in (nothing secret: a public
        OIDC client uses PKCE, not a client secret)."""
        return console_config_of(settings)

    @router.get("/console/divisions.geojson", include_in_schema=False)
    async def division_shapes() -> FileResponse:
        """The sample city's division boundaries (synthetic; shared/reference/divisions.geojson)."""
        return FileResponse(DIVISION_SHAPES, media_type="application/geo+json")

    @router.get("/console/divisions.json", include_in_schema=False)
    async def division_names() -> dict:
        """Division codes and names (shared master data), for the console's labels."""
        return division_list

    @router.get("/console/{name:path}", include_in_schema=False)
    async def console_file(name: str) -> FileResponse:
        """The console's script, style and vendored chart library (only the files it is made of)."""
        if name not in CONSOLE_FILES:
            raise Problem(404, "Not found")
        return FileResponse(CONSOLE / name, media_type=CONSOLE_FILES[name])

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
                "events": [record_json(r, personal, grid_ids=grant.role == "operator") for r in records]}

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
        by: Literal["unit", "town", "county", "grid", "channel"] = "unit",
        period: Literal["month", "quarter"] = "month",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict:
        rows = await storage.metrics(request.app.state.runtime.pool, by, period, since, until, jurisdiction(grant))
        figures = domain.figures([dict(r) for r in rows])
        return {"by": by, "period": period, "figures": figures, "ranking": domain.ranking(figures)}

    @router.get("/overview/divisions", summary="Open, overdue and high-risk cases per county or town (the map)")
    async def overview(request: Request, grant: TokenGrant = Depends(readers),
                       level: Literal["county", "town"] = "town") -> dict:
        rows = await storage.division_overview(request.app.state.runtime.pool, level, jurisdiction(grant))
        return {"level": level, "divisions": domain.division_overview([dict(r) for r in rows])}

    @router.get("/trends", summary="Cases received and closed per day (Beijing time), by category or channel")
    async def trends(request: Request, grant: TokenGrant = Depends(readers),
                     by: Literal["category", "channel"] = "category",
                     days: int = Query(30, ge=1, le=TREND_MAX_DAYS, description="ending today")) -> dict:
        last = datetime.now(BEIJING).date()
        first = last - timedelta(days=days - 1)
        since = datetime.combine(first, datetime.min.time(), BEIJING)
        until = datetime.combine(last + timedelta(days=1), datetime.min.time(), BEIJING)
        rows = await storage.daily_trend(request.app.state.runtime.pool, by, since, until, jurisdiction(grant))
        return {"by": by, **domain.daily_series([dict(r) for r in rows], first, last)}

    @router.get("/events/stream", summary="Live feed (server-sent events) of newly recorded events",
                responses={503: {"description": "too many live feeds at once; retry after Retry-After seconds"}})
    async def stream(request: Request, after_id: int | None = Query(None, ge=0),
                     grant: TokenGrant = Depends(readers)) -> Response:
        pool = request.app.state.runtime.pool
        scope = jurisdiction(grant)
        if not feeds.take():
            raise Overloaded(f"this instance serves at most {feeds.cap} at once; retry shortly",
                             FEED_RETRY_AFTER_SECONDS, title="Too many live feeds")

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

        return _Feed(events(), feeds, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def city_wide_auditor(grant: TokenGrant = Depends(auditors)) -> TokenGrant:
        """The whole store names cases of every division: auditors with a city-wide grant only."""
        if jurisdiction(grant) is not None:
            raise Problem(403, "Forbidden", "whole-store verification is for city-wide auditors")
        return grant

    @router.post("/verifications", status_code=202, summary="Start verifying the whole store (auditors;"
                 " one at a time: 409 names the running one)",
                 responses={409: {"description": "a verification is running (its URL in `running`)"}})
    async def start_verification(request: Request, grant: TokenGrant = Depends(city_wide_auditor)) -> JSONResponse:
        job = verifications.start(request.app.state.runtime.pool, key, settings.audit_checkpoint_seconds,
                                  grant.subject)
        if job is None:
            running = verifications.running()
            raise Problem(409, "A verification is running", "one whole-store verification at a time: follow the"
                          " running one", running=f"/v1/verifications/{running.id}" if running else None)
        return JSONResponse(job.as_json(), status_code=202, headers={"Location": f"/v1/verifications/{job.id}"})

    @router.get("/verifications/{job_id}", summary="A whole-store verification: status, and once done its"
                " findings, counts and time (auditors)", dependencies=[Depends(city_wide_auditor)])
    async def verification(job_id: str) -> dict:
        job = verifications.get(job_id)
        if job is None:
            raise Problem(404, "No such verification",
                          f"jobs live in the instance that ran them, the latest {verifications.keep}")
        return job.as_json()

    @router.get("/cases/{case_id}/verify", summary="Verify a case's hash chain, the checkpoints and the"
                " append-only triggers (the verdict the console shows)")
    async def verify_case(case_id: str, request: Request, grant: TokenGrant = Depends(readers)) -> dict:
        await check_visible(request, case_id, grant)
        async with request.app.state.runtime.pool.acquire() as conn, \
                conn.transaction(isolation="repeatable_read", readonly=True):
            result = await handlers.verify(conn, key, case_id, checkpoint_seconds=settings.audit_checkpoint_seconds)
        if not result["records"]:
            raise Problem(404, "No trace for this case")
        return result

    # --- 研判 and reports (HTML pages; reports also as PDF) ------------------------------------------
    scheme = reports.load_indicators()

    def visible_division(grant: TokenGrant, division: str) -> None:
        """A report of a division only for a grant whose jurisdiction covers all of it."""
        if not may_see(grant, division):
            raise Problem(403, "Forbidden", "this division is outside your jurisdiction")

    @router.get("/reports/daily", summary="日研判: a county's daily digest of a Beijing day (HTML)",
                response_class=HTMLResponse)
    async def daily_report(request: Request, grant: TokenGrant = Depends(readers),
                           division: str = Query(..., pattern=r"^\d{6}$", description="county code"),
                           day: str = Query(..., pattern=r"^\d{4}-\d{2}-\d{2}$", description="Beijing day")
                           ) -> HTMLResponse:
        visible_division(grant, division)
        try:
            period = reports.period_of("daily", day)
        except ValueError as e:
            raise Problem(422, "Invalid day", str(e)) from None
        pool = request.app.state.runtime.pool
        # the scheduled job's digest when there is one (what was studied that day), else made now
        content = await storage.stored_digest(pool, division, period.first_day)
        if content is None:
            content = await handlers.make_digest(pool, division, period.first_day, scheme)
        return HTMLResponse(reports.digest_html(content))

    @router.get("/reports/{kind}", summary="每月报进度、季度出排名: rankings of units, towns and grids with the"
                " 百分制 score and 落后预警 (HTML, PDF or JSON)",
                responses={200: {"content": {"text/html": {}, "application/pdf": {}, "application/json": {}}}})
    async def period_report(request: Request, kind: Literal["monthly", "quarterly"],
                            grant: TokenGrant = Depends(readers),
                            division: str = Query(..., pattern=r"^\d{6}(\d{3})?$", description="county or town"),
                            period: str = Query(..., max_length=10, description="YYYY-MM or YYYY-Qn"),
                            format: Literal["html", "pdf", "json"] = "html") -> Response:
        visible_division(grant, division)
        try:
            span = reports.period_of(kind, period)
        except ValueError as e:
            raise Problem(422, "Invalid period", str(e)) from None
        made = await handlers.make_report(request.app.state.runtime.pool, span, division, scheme)
        if format == "json":
            return JSONResponse(reports.report_json(made))
        page = reports.report_html(made)
        if format == "html":
            return HTMLResponse(page)
        body = await asyncio.to_thread(reports.pdf, page)  # layout takes a while: off the event loop
        return Response(body, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{kind}-{division}-{span.label}.pdf"'})

    return router
