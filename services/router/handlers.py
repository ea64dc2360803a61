"""The router's event handlers: thin translations between events and the pure domain.

The whole event flow of the service reads here: EVENT_HANDLERS maps each consumed event type
to its handler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import asyncpg

from services.router import domain, storage
from shared import topics
from shared.cloudevents import derive_id, utcnow
from shared.contracts import (
    CaseClosed,
    CaseDuplicateReported,
    CaseDispatched,
    CaseReceived,
    CaseRouted,
    DispatchAccepted,
    DispatchResolved,
    ManualTriageRequired,
)
from shared.messaging.consumer import BatchHandler, Inbound, Reject
from shared.messaging.outbox import Outgoing

log = logging.getLogger(__name__)
SOURCE = "/onewindow/router"


@dataclass
class Batch:
    """What handlers of one batch share: reference data, loaded states, changed states, output."""

    catalogue: domain.Catalogue
    units: domain.UnitDirectory
    states: dict[str, domain.RoutingState]
    changed: dict[str, domain.RoutingState] = field(default_factory=dict)
    out: list[Outgoing] = field(default_factory=list)


def on_case_received(item: Inbound, b: Batch) -> None:
    """Route a new case: dispatch it to a unit, or put it in the manual queue."""
    case = item.model
    assert isinstance(case, CaseReceived)
    cid = str(case.case_id)
    if cid in b.states:
        return  # already routed (the same case re-submitted under a new event id)
    decision = domain.route(case, b.catalogue, b.units)
    now = utcnow()
    if isinstance(decision, domain.ManualQueue):
        state = domain.RoutingState(cid, case.case_number, domain.CaseStatus.MANUAL, b.catalogue.version, now)
        b.out.append(
            item.derive(
                topics.ROUTER_DECISIONS,
                ManualTriageRequired(
                    case_id=case.case_id,
                    case_number=case.case_number,
                    reason=decision.reason,
                    catalogue_version=b.catalogue.version,
                ),
                source=SOURCE,
                event_id=derive_id(SOURCE, item.event.id, "manual"),
                time=now,
            )
        )
    else:
        dispatch_id = derive_id(SOURCE, item.event.id, "dispatch")
        unit = decision.unit
        state = domain.RoutingState(
            cid,
            case.case_number,
            domain.CaseStatus.DISPATCHED,
            b.catalogue.version,
            now,
            dispatch_id=dispatch_id,
            unit_id=unit.id,
            unit_kind=unit.kind.value,
            category=decision.category.code,
            rule_ids=decision.rule_ids,
        )
        b.out.append(
            item.derive(
                topics.ROUTER_DECISIONS,
                CaseRouted(
                    case_id=case.case_id,
                    case_number=case.case_number,
                    category=decision.category.code,
                    unit_kind=unit.kind,
                    unit_id=unit.id,
                    unit_name=unit.name,
                    level=unit.level,
                    rule_ids=list(decision.rule_ids),
                    catalogue_version=b.catalogue.version,
                    confidence=decision.confidence,
                ),
                source=SOURCE,
                event_id=derive_id(SOURCE, item.event.id, "routed"),
                time=now,
            )
        )
        b.out.append(
            item.derive(
                topics.dispatch_topic(unit.kind),
                CaseDispatched(
                    case_id=case.case_id,
                    case_number=case.case_number,
                    dispatch_id=dispatch_id,
                    unit_kind=unit.kind,
                    unit_id=unit.id,
                    unit_name=unit.name,
                    level=unit.level,
                    category=decision.category.code,
                    title=case.title,
                    description=case.description,
                    location=case.location,
                    acknowledge_by=decision.acknowledge_by,
                    resolve_by=decision.resolve_by,
                ),
                source=SOURCE,
                event_id=dispatch_id,
                # the dispatch follows the routing decision it carries out
                time=now + timedelta(microseconds=1),
            )
        )
    b.states[cid] = b.changed[cid] = state


def _state_for_feedback(item: Inbound, b: Batch) -> domain.RoutingState:
    state = b.states.get(item.event.subject)
    if state is None:
        raise Reject(f"no case {item.event.subject} was dispatched")
    expected_topic = topics.feedback_topic(state.unit_kind) if state.unit_kind else None
    if item.record.topic != expected_topic:
        raise Reject(f"feedback on {item.record.topic} for a case dispatched to {state.unit_kind}")
    return state


def on_dispatch_accepted(item: Inbound, b: Batch) -> None:
    """签收: the unit has the case."""
    fb = item.model
    assert isinstance(fb, DispatchAccepted)
    state = _state_for_feedback(item, b)
    try:
        if state.accept(str(fb.dispatch_id), fb.unit_id):
            b.changed[state.case_id] = state
    except domain.FeedbackRefused as exc:
        raise Reject(str(exc)) from None


def on_dispatch_resolved(item: Inbound, b: Batch) -> None:
    """办结: the unit finished; the router closes the case."""
    fb = item.model
    assert isinstance(fb, DispatchResolved)
    state = _state_for_feedback(item, b)
    try:
        changed = state.resolve(str(fb.dispatch_id), fb.unit_id)
    except domain.FeedbackRefused as exc:
        raise Reject(str(exc)) from None
    if changed:
        b.changed[state.case_id] = state
        b.out.append(
            item.derive(
                topics.ROUTER_DECISIONS,
                CaseClosed(
                    case_id=fb.case_id,
                    case_number=state.case_number,
                    dispatch_id=fb.dispatch_id,
                    unit_id=fb.unit_id,
                    reason="resolved by the handling unit",
                ),
                source=SOURCE,
                event_id=derive_id(SOURCE, state.case_id, state.dispatch_id, "closed"),
            )
        )


def on_duplicate_reported(item: Inbound, b: Batch) -> None:
    """A repeat report is linked by intake; routing does not change (risk grading will count them)."""


EVENT_HANDLERS: dict[str, Callable[[Inbound, Batch], None]] = {
    CaseReceived.EVENT_TYPE: on_case_received,
    CaseDuplicateReported.EVENT_TYPE: on_duplicate_reported,
    DispatchAccepted.EVENT_TYPE: on_dispatch_accepted,
    DispatchResolved.EVENT_TYPE: on_dispatch_resolved,
}

CONSUMED_TOPICS = [topics.CASES_RECEIVED, *topics.FEEDBACK_TOPICS]


def build_batch_handler(catalogue: domain.Catalogue, units: domain.UnitDirectory) -> BatchHandler:
    """The router's batch handler: one state read, the pure decisions, one state write."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        states = await storage.load_states(conn, {i.event.subject for i in items})
        batch = Batch(catalogue, units, states)
        for item in items:
            handler = EVENT_HANDLERS.get(item.event.type)
            if handler is None:
                raise Reject(f"the router does not take {item.event.type} events")
            handler(item, batch)
        await storage.save_states(conn, batch.changed.values())
        return batch.out

    return handle
