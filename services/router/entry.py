"""Router's entry point: `create_app()` builds the process (health over HTTP, consumers on Kafka)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.router import domain
from services.router.handlers import CONSUMED_TOPICS, build_batch_handler
from shared.runtime import ServiceRuntime, Subscription, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Router: `intake.cases` + `feedback.*` → decisions, dispatches, closures (through the outbox)."""
    settings = settings or Settings()
    # Reference data is validated here, so a broken catalogue fails at start-up.
    catalogue, units = domain.load_catalogue(), domain.load_units()
    runtime = ServiceRuntime(
        "router",
        settings,
        MIGRATIONS,
        subscriptions=lambda _rt: [Subscription("router", CONSUMED_TOPICS, build_batch_handler(catalogue, units))],
    )
    return service_app(runtime, title="OneWindow router")
