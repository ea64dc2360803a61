"""Audit's entry point."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.audit import handlers
from services.audit.api import build_router
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
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

    async def stop_verifications(rt: ServiceRuntime) -> None:
        await verifications.cancel()

    runtime = ServiceRuntime(
        "audit",
        settings,
        MIGRATIONS,
        handlers={"audit": handlers.record_events, "audit-deadletters": handlers.record_dead_letters},
        periodic=[("audit-checkpoints", settings.audit_checkpoint_seconds, checkpoint)],
        prepare=backfill,
        before_stop=stop_verifications,
    )
    return service_app(runtime, title="OneWindow audit", routers=[build_router(settings, verifications)])
