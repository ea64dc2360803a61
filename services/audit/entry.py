"""Audit's entry point."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.audit import handlers, reports
from services.audit.api import build_router
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# How often the daily-digest job looks for a Beijing day not yet digested (cheap when there is none).
DIGEST_CHECK_SECONDS = 600.0
log = logging.getLogger(__name__)


async def backfill(rt: ServiceRuntime) -> None:
    """Case summaries for a trace recorded before they existed (once; before consuming)."""
    async with rt.pool.acquire() as conn:
        if cases := await handlers.backfill_summaries(conn):
            log.info("case summaries backfilled", extra={"cases": cases})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Audit: every case topic → the hash-chained trace; `deadletter` → dead-letter records; HTTP queries."""
    settings = settings or Settings()
    key = settings.signing_key()  # refuses to build the service without one

    verifications = handlers.VerificationJobs()

    async def checkpoint(rt: ServiceRuntime) -> None:
        async with rt.pool.acquire() as conn, conn.transaction():
            await handlers.take_checkpoint(conn, key, settings.audit_key_id)

    scheme = reports.load_indicators()  # refuses to start on weights that do not add up to 100

    async def digests(rt: ServiceRuntime) -> int:
        return await handlers.daily_digests(rt.pool, datetime.now(UTC), scheme)  # > 0 wakes the relay

    async def stop_verifications(rt: ServiceRuntime) -> None:
        await verifications.cancel()

    runtime = ServiceRuntime(
        "audit",
        settings,
        MIGRATIONS,
        handlers={"audit": handlers.record_events, "audit-deadletters": handlers.record_dead_letters},
        periodic=[("audit-checkpoints", settings.audit_checkpoint_seconds, checkpoint),
                  ("audit-daily-digests", DIGEST_CHECK_SECONDS, digests)],
        prepare=backfill,
        before_stop=stop_verifications,
    )
    return service_app(runtime, title="OneWindow audit", routers=[build_router(settings, verifications)])
