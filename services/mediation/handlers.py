"""Mediation's event handlers."""

from __future__ import annotations

import asyncpg

from services.mediation import domain, storage
from shared import topics
from shared.cloudevents import derive_id, utcnow
from shared.contracts import CaseDispatched, SupervisionNotice
from shared.messaging.consumer import Inbound, Reject
from shared.messaging.outbox import Outgoing

CONSUMED_TOPICS = [topics.dispatch_topic(topics.UnitKind.MEDIATION)]


async def handle_batch(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
    """Accept every new mediation dispatch: record it and answer on `feedback.mediation`."""
    dispatches, out = [], []
    for item in items:
        if isinstance(item.model, SupervisionNotice):
            continue  # 督办 notices are recorded by audit; the lifecycle service will act on them
        if not isinstance(item.model, CaseDispatched):
            raise Reject(f"mediation does not take {item.event.type} events")
        d = item.model
        dispatches.append(d)
        out.append(
            item.derive(
                topics.feedback_topic(topics.UnitKind.MEDIATION),
                domain.acceptance(d),
                source=domain.SOURCE,
                event_id=derive_id(domain.SOURCE, d.dispatch_id, "accepted"),
            )
        )
    await storage.record_accepted(conn, dispatches, utcnow())
    return out
