"""Router's entry point: `create_app()` builds the process (operator API over HTTP, consumers on
Kafka, the supervision tick)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.router import domain, grids, triage
from services.router.api import build_api
from services.router.handlers import build_batch_handler, explain_refused_feedback, supervise_once
from services.router.workflow import RoutingDesk
from shared.cloudevents import utcnow
from shared.divisions import load_divisions
from shared.grids import load_grids
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Router: `intake.cases` + `feedback.*` → decisions, dispatches, notices (through the outbox)."""
    settings = settings or Settings()
    # Reference data is validated here, so a broken catalogue fails at start-up.
    divisions, grid_directory = load_divisions(), load_grids()
    grid_directory.check_divisions(divisions)
    desk = RoutingDesk(domain.load_catalogue(), grids.with_grid_units(domain.load_units(), grid_directory), divisions,
                       triage.load_active(), grids=grid_directory)
    domain.check_model(desk.model, desk.catalogue)
    desk.model.predict(["预热分词词典"])  # load jieba's dictionary now, not on the first case
    runtime = ServiceRuntime(
        "router",
        settings,
        MIGRATIONS,
        handlers={"router": build_batch_handler(desk)},
        explain={"router": explain_refused_feedback},
        # 督办: clocks turn yellow/red and escalate on this tick
        periodic=[("supervision", settings.supervision_interval_seconds,
                   lambda rt: supervise_once(rt.pool, desk, utcnow()))],
    )
    return service_app(runtime, title="OneWindow router", routers=[build_api(settings, desk)])
