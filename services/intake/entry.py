"""Intake's entry point: `create_app()` builds the ASGI app (nothing connects at import)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.intake.handlers import build_router
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Intake: HTTP window → PostgreSQL (case + outbox) → `intake.cases`."""
    settings = settings or Settings()
    runtime = ServiceRuntime("intake", settings, MIGRATIONS)
    return service_app(runtime, title="OneWindow intake", routers=[build_router(settings)])
