"""Mediation's PostgreSQL queries."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.mediation.domain import MediationStatus
from shared.contracts import CaseDispatched


async def record_accepted(conn: asyncpg.Connection, dispatches: list[CaseDispatched], at: datetime) -> None:
    """Record accepted mediation dispatches in one statement (a dispatch seen before is kept as is)."""
    await conn.executemany(
        "INSERT INTO mediation_cases (case_id, dispatch_id, case_number, committee_id, category, status, accepted_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (dispatch_id) DO NOTHING",
        [(d.case_id, d.dispatch_id, d.case_number, d.unit_id, d.category, MediationStatus.ACCEPTED.value, at)
         for d in dispatches],
    )
