"""Intake's entry point: `create_app()` builds the ASGI app (nothing connects at import)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from services.intake import domain
from services.intake.api import MAX_BODY, build_router, serve_submissions_fast
from services.intake.handlers import GroupWriter, project_status, submissions_handler
from shared.divisions import load_divisions
from shared.grids import load_grids
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    """Intake: HTTP window and `intake.submissions` → cases (+ outbox) → `intake.cases`.

    `fast_path`: POST /v1/cases is answered by `SubmitFastPath` (False: by the FastAPI route alone,
    with the same answers, slower; the tests compare the two)."""
    settings = settings or Settings()
    divisions = load_divisions()
    grids = load_grids()
    grids.check_divisions(divisions)  # a grid in no known village is a master-data error: refuse to start
    policy = domain.DuplicatePolicy(timedelta(hours=settings.duplicate_window_hours), settings.duplicate_threshold)
    app: FastAPI | None = None

    async def after_start(rt: ServiceRuntime) -> None:
        app.state.writer = GroupWriter(rt.pool, policy, on_commit=rt.relay.wake, max_queue=settings.intake_queue_max)
        app.state.writer.start()

    async def before_stop(rt: ServiceRuntime) -> None:
        await app.state.writer.stop()

    runtime = ServiceRuntime(
        "intake",
        settings,
        MIGRATIONS,
        # Intake accepts HTTP submissions while Kafka is down: its consumers wait for the broker.
        handlers={"intake": submissions_handler(divisions, policy, grids), "intake-status": project_status},
        after_start=after_start,
        before_stop=before_stop,
        consumers_optional=True,
    )
    router = build_router(settings, divisions, grids)
    app = service_app(runtime, title="OneWindow intake", routers=[router], max_body=MAX_BODY)
    if fast_path:
        serve_submissions_fast(app, router.window, settings, MAX_BODY)
    _publish_body_schemas(app, router.extra_schemas)
    return app


def _publish_body_schemas(app: FastAPI, schemas: dict) -> None:
    """Add the submission contract's sub-schemas to the OpenAPI components its body refers to."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = generate()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi
