"""Mediation's entry point."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from services.mediation import domain
from services.mediation.api import build_api
from services.mediation.handlers import CONSUMED_TOPICS, Mediation, expire_overdue, handle_batch_with
from shared.cloudevents import utcnow
from shared.runtime import ServiceRuntime, Subscription, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Mediation: `dispatch.mediation` + `court.referrals` → mediations → feedback, events, court."""
    settings = settings or Settings()
    directory = domain.load_directory()
    mediation = Mediation(directory)
    tasks: list[asyncio.Task] = []

    async def expire_forever(rt: ServiceRuntime) -> None:
        while True:
            try:
                if await expire_overdue(rt.pool, utcnow()):
                    rt.relay.wake()
            except Exception:
                log.exception("time-limit tick failed; the next one retries")
            await asyncio.sleep(settings.supervision_interval_seconds)

    async def after_start(rt: ServiceRuntime) -> None:
        tasks.append(asyncio.create_task(expire_forever(rt), name="mediation-time-limits"))

    async def before_stop(rt: ServiceRuntime) -> None:
        for t in tasks:
            t.cancel()

    runtime = ServiceRuntime(
        "mediation",
        settings,
        MIGRATIONS,
        subscriptions=lambda _rt: [Subscription("mediation", CONSUMED_TOPICS, handle_batch_with(mediation))],
        after_start=after_start,
        before_stop=before_stop,
    )
    return service_app(runtime, title="OneWindow mediation", routers=[build_api(settings, directory)])
