"""The router's PostgreSQL queries (batched: one read and one write per batch)."""

from __future__ import annotations

from typing import Iterable
from uuid import UUID

import asyncpg

from services.router.domain import CaseStatus, RoutingState


async def load_states(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, RoutingState]:
    """The routing state of the given cases, by case id (absent: the router has not seen the case)."""
    rows = await conn.fetch(
        "SELECT case_id, case_number, status, dispatch_id, unit_id, unit_kind, category, rule_ids,"
        " catalogue_version, decided_at FROM cases WHERE case_id = ANY($1::uuid[])",
        [UUID(c) for c in case_ids],
    )
    return {
        str(r["case_id"]): RoutingState(
            case_id=str(r["case_id"]),
            case_number=r["case_number"],
            status=CaseStatus(r["status"]),
            catalogue_version=r["catalogue_version"],
            decided_at=r["decided_at"],
            dispatch_id=str(r["dispatch_id"]) if r["dispatch_id"] else None,
            unit_id=r["unit_id"],
            unit_kind=r["unit_kind"],
            category=r["category"],
            rule_ids=tuple(r["rule_ids"]),
        )
        for r in rows
    }


async def save_states(conn: asyncpg.Connection, states: Iterable[RoutingState]) -> None:
    """Insert or update the given states in one statement."""
    await conn.executemany(
        "INSERT INTO cases (case_id, case_number, status, dispatch_id, unit_id, unit_kind, category, rule_ids,"
        " catalogue_version, decided_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        " ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status, dispatch_id = EXCLUDED.dispatch_id,"
        " unit_id = EXCLUDED.unit_id, unit_kind = EXCLUDED.unit_kind, category = EXCLUDED.category,"
        " rule_ids = EXCLUDED.rule_ids, updated_at = now()",
        [
            (
                UUID(s.case_id),
                s.case_number,
                s.status.value,
                UUID(s.dispatch_id) if s.dispatch_id else None,
                s.unit_id,
                s.unit_kind,
                s.category,
                list(s.rule_ids),
                s.catalogue_version,
                s.decided_at,
            )
            for s in states
        ],
    )
