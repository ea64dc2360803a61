"""Mediation's entry point."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.mediation.handlers import CONSUMED_TOPICS, handle_batch
from shared.runtime import ServiceRuntime, Subscription, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Mediation: `dispatch.mediation` → mediation cases → `feedback.mediation`."""
    settings = settings or Settings()
    runtime = ServiceRuntime(
        "mediation",
        settings,
        MIGRATIONS,
        subscriptions=lambda _rt: [Subscription("mediation", CONSUMED_TOPICS, handle_batch)],
    )
    return service_app(runtime, title="OneWindow mediation")
