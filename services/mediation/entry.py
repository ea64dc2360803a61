"""Mediation's entry point."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.mediation import domain, risks
from services.mediation.api import build_api, build_risk_api
from services.mediation.handlers import Mediation, expire_overdue, handle_batch_with
from services.mediation.risk_handlers import Register
from shared.cloudevents import utcnow
from shared.divisions import load_divisions
from shared.runtime import ServiceRuntime, service_app
from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Mediation: `dispatch.mediation` + `court.referrals` → mediations → feedback, events, court;
    `intake.cases` → the risk register → `mediation.risks`."""
    settings = settings or Settings()
    directory = domain.load_directory()
    mediation = Mediation(directory)
    register = Register(risks.load_weights(), load_divisions())
    runtime = ServiceRuntime(
        "mediation",
        settings,
        MIGRATIONS,
        handlers={"mediation": handle_batch_with(mediation), "mediation-risks": register.on_cases},
        periodic=[("mediation-time-limits", settings.supervision_interval_seconds,
                   lambda rt: expire_overdue(rt.pool, utcnow()))],
    )
    return service_app(runtime, title="OneWindow mediation", routers=[build_api(settings, directory),
                                                                      build_risk_api(settings, register)])
