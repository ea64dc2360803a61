"""The router's handlers: consumed events, operator acts and the supervision tick, each a thin
step between the wire and the routing desk (`workflow`): load the states, let the desk decide, save.
EVENT_HANDLERS shows the whole event flow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable
from uuid import UUID

import asyncpg

from services.router import domain, storage
from services.router.lifecycle import Act
from services.router.triage import Prediction
from services.router.workflow import SplitRequest, SOURCE, Cause, EventRefused, RoutingDesk
from shared import topics
from shared.cloudevents import Actor, CloudEvent, derive_id
from shared.contracts.events import CallbackOutcome, CaseRated, DispositionCode, ExtensionRequested, ReopenRequested
from shared.contracts import (
    CaseDuplicateReported,
    CaseReceived,
    Contract,
    DispatchAccepted,
    DispatchProgress,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    SupervisionNotice,
)
from shared.messaging.consumer import BatchHandler, Inbound, Reject
from shared.messaging.outbox import Emitter, Outgoing, add_to_outbox

log = logging.getLogger(__name__)


@dataclass
class Effects(Emitter):
    """What one batch or one operator act decided: events (`emit`), changed states, clock changes."""

    source: str = SOURCE
    states: dict[str, domain.RoutingState] = field(default_factory=dict)
    changed: dict[str, domain.RoutingState] = field(default_factory=dict)
    clock_starts: list[tuple] = field(default_factory=list)
    clock_stops: list[tuple[str, str | None]] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by event id, read for the whole batch

    def touch(self, state: domain.RoutingState) -> None:
        self.states[state.case_id] = self.changed[state.case_id] = state

    async def save(self, conn: asyncpg.Connection) -> None:
        """Write the changed states and the clock changes in the caller's transaction."""
        await storage.save_states(conn, self.changed.values())
        await storage.stop_clocks(conn, self.clock_stops)
        await storage.start_clocks(conn, self.clock_starts)

    async def commit(self, conn: asyncpg.Connection) -> None:
        """Write states, clocks and outbox rows in the caller's transaction."""
        await self.save(conn)
        await add_to_outbox(conn, self.out)


# ---------------------------------------------------------------- consumed events

EVENT_HANDLERS: dict[str, Callable[[RoutingDesk, Effects, Contract, Cause], None]] = {
    CaseReceived.EVENT_TYPE: RoutingDesk.case_received,
    CaseDuplicateReported.EVENT_TYPE: RoutingDesk.duplicate_reported,
    DispatchAccepted.EVENT_TYPE: RoutingDesk.dispatch_accepted,
    DispatchProgress.EVENT_TYPE: RoutingDesk.dispatch_progress,
    DispatchResolved.EVENT_TYPE: RoutingDesk.dispatch_resolved,
    DispatchReturned.EVENT_TYPE: RoutingDesk.dispatch_returned,
    DispatchTransferred.EVENT_TYPE: RoutingDesk.dispatch_transferred,
    ExtensionRequested.EVENT_TYPE: RoutingDesk.extension_requested,
    CaseRated.EVENT_TYPE: RoutingDesk.citizen_rated,
    ReopenRequested.EVENT_TYPE: RoutingDesk.reopen_requested,
}


def build_batch_handler(desk: RoutingDesk) -> BatchHandler:
    """The router's batch handler: one locked state read, the desk's decisions, one write of everything."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        fx = Effects(states=await storage.load_states(conn, {i.event.subject for i in items}))
        fx.predictions = desk.predict_batch({i.event.id: i.model for i in items
                                             if i.event.type == CaseReceived.EVENT_TYPE})
        for item in items:
            handler = EVENT_HANDLERS.get(item.event.type)
            if handler is None:
                raise Reject(f"the router does not take {item.event.type} events")
            try:
                handler(desk, fx, item.model, Cause(item.event.id, item.event.subject, item.record.topic,
                                                    item.traceparent, item.event.actor))
            except EventRefused as exc:
                raise Reject(str(exc)) from None
        await fx.save(conn)
        return fx.out

    return handle


def explain_refused_feedback(record, error: str):
    """A `feedback.rejected` event on `rejections.<kind>` for feedback the router dead-lettered, so the
    department (which may not read the dead-letter topic) learns why. None for other records."""
    from shared.cloudevents import header_map
    from shared.contracts import FeedbackRejected
    from shared.messaging.producer import Record

    if not record.topic.startswith("feedback."):
        return None
    kind = record.topic.removeprefix("feedback.")
    try:
        h = header_map(record.headers)
    except ValueError:
        h = {}
    about = h.get("ce_subject") or h.get("ce_id") or (record.key or b"").decode(errors="replace") or "unknown"
    data = FeedbackRejected(about=about, feedback_id=h.get("ce_id"), feedback_source=h.get("ce_source"),
                            feedback_type=h.get("ce_type"), topic=record.topic, offset=record.offset,
                            reason=error[:2000])
    ev = CloudEvent.of(data, source=SOURCE, event_id=derive_id(SOURCE, record.topic, record.partition,
                                                               record.offset, "rejected"))
    return Record(topics.rejection_topic(kind), ev.key(), ev.value(), ev.headers(), None, ev.id)


# ---------------------------------------------------------------- operator acts


async def _act(conn: asyncpg.Connection, case_id: UUID | str, actor: Actor, decide: Callable[[Effects, domain.RoutingState | None], domain.RoutingState]
               ) -> domain.RoutingState:
    """Load the case, let the desk decide the act, save state, clocks and events in the caller's transaction."""
    fx = Effects(states=await storage.load_states(conn, [str(case_id)]), actor=actor)
    state = decide(fx, fx.states.get(str(case_id)))
    await fx.commit(conn)
    return state


async def record_callback(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, outcome: CallbackOutcome,
                          note: str | None, traceparent: str | None, actor: Actor) -> domain.RoutingState:
    """回访: 满意 / 基本满意 close the case; 不满意 reopens it for rework (重办), the second time escalated;
    未接通 is tried again, up to the catalogue's number of attempts."""
    return await _act(conn, case_id, actor, lambda fx, s: desk.record_callback(fx, s, outcome, note, traceparent))


async def manual_dispatch(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, category: str | None,
                          unit_id: str | None, traceparent: str | None, actor: Actor,
                          category_text: str | None = None) -> domain.RoutingState:
    """An operator dispatches a case from the manual queue, or reassigns an open one."""
    return await _act(conn, case_id, actor, lambda fx, s: desk.manual_dispatch(
        fx, s, category, unit_id, actor.id, traceparent, category_text))


async def review_resolution(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, approved: bool,
                            note: str | None, traceparent: str | None, actor: Actor) -> domain.RoutingState:
    """办结审核 by an operator."""
    return await _act(conn, case_id, actor, lambda fx, s: desk.review_resolution(fx, s, approved, note, actor.id,
                                                                                traceparent))


async def review_return(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, approved: bool,
                        note: str | None, traceparent: str | None, actor: Actor) -> domain.RoutingState:
    """退单审核 / 转办审核 by an operator."""
    return await _act(conn, case_id, actor, lambda fx, s: desk.review_return(fx, s, approved, note, actor.id,
                                                                            traceparent))


async def split(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, parts: list[SplitRequest],
                note: str | None, traceparent: str | None, actor: Actor
                ) -> tuple[domain.RoutingState, list[domain.RoutingState]]:
    """拆单 from the manual queue: the report's parts become cases of their own, each dispatched.
    Returns the report and its parts."""
    fx = Effects(states=await storage.load_states(conn, [str(case_id)]), actor=actor)
    children = desk.split(fx, fx.states.get(str(case_id)), parts, note, actor.id, traceparent)
    await fx.commit(conn)
    return fx.states[str(case_id)], children


async def dispose(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, act: Act, code: DispositionCode,
                  note: str, traceparent: str | None, actor: Actor) -> domain.RoutingState:
    """直接办结 or 不予受理 from the manual queue."""
    return await _act(conn, case_id, actor, lambda fx, s: desk.dispose(fx, s, act, code, note, traceparent))


async def merge(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, into_case_id: UUID, note: str | None,
                traceparent: str | None, actor: Actor) -> domain.RoutingState:
    """并单: merge the case into another."""
    fx = Effects(states=await storage.load_states(conn, sorted({str(case_id), str(into_case_id)})), actor=actor)
    state = desk.merge(fx, fx.states.get(str(case_id)), fx.states.get(str(into_case_id)), note, traceparent)
    await fx.commit(conn)
    return state


async def urge(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, dispatch_id: UUID, note: str,
               traceparent: str | None, actor: Actor, now: datetime) -> domain.RoutingState:
    """催办 the holding unit."""
    seed = f"urge:{dispatch_id}:{actor.id}:{now.isoformat()}"
    return await _act(conn, case_id, actor, lambda fx, s: desk.urge(fx, s, str(dispatch_id), note, seed, traceparent))


async def supervise_by_hand(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, dispatch_id: UUID,
                            colour: domain.ClockColour, note: str, traceparent: str | None, actor: Actor,
                            now: datetime) -> domain.RoutingState:
    """A 督办单 issued by hand."""
    clocks = await storage.clocks_of_dispatch(conn, dispatch_id)
    seed = f"supervise:{dispatch_id}:{actor.id}:{now.isoformat()}"
    return await _act(conn, case_id, actor, lambda fx, s: desk.supervise_by_hand(
        fx, s, str(dispatch_id), colour, note, clocks, seed, traceparent))


async def pause_or_resume(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, dispatch_id: UUID,
                          pause: bool, reason: str, now: datetime, traceparent: str | None,
                          actor: Actor) -> list[domain.Clock]:
    """Pause (with a reason) or resume the running clocks of a dispatch; a resumed due time moves on.
    Each is an event with its actor."""
    clocks = await storage.clocks_of_dispatch(conn, dispatch_id)
    fx = Effects(states=await storage.load_states(conn, [str(case_id)]), actor=actor)
    seed = f"{'pause' if pause else 'resume'}:{dispatch_id}:{now.isoformat()}"
    changes = desk.pause_or_resume(fx, fx.states.get(str(case_id)), str(dispatch_id), clocks, pause, reason, now,
                                   seed, traceparent)
    await storage.save_clocks(conn, changes)
    await fx.commit(conn)
    return [c.clock for c in changes]


async def decide_extension(conn: asyncpg.Connection, desk: RoutingDesk, case_id: UUID, dispatch_id: UUID,
                           approved: bool, due_at: datetime | None, note: str | None, traceparent: str | None,
                           actor: Actor) -> list[domain.Clock]:
    """An operator decides a unit's 延期申请; an approval moves the resolve clock."""
    clocks = await storage.clocks_of_dispatch(conn, dispatch_id)
    fx = Effects(states=await storage.load_states(conn, [str(case_id)]), actor=actor)
    changes = desk.decide_extension(fx, fx.states.get(str(case_id)), str(dispatch_id), approved, due_at, note,
                                    clocks, traceparent)
    await storage.save_clocks(conn, changes)
    await fx.commit(conn)
    return [c.clock for c in changes]


# ---------------------------------------------------------------- supervision


async def supervise_once(pool: asyncpg.Pool, desk: RoutingDesk, now: datetime) -> int:
    """One supervision tick (督办) over the clocks due by `now` (a parameter, so tests drive time).
    Returns the notices sent."""
    async with pool.acquire() as conn, conn.transaction():
        fx = Effects()
        changes = desk.supervise(fx, await storage.due_clocks(conn, now), now)
        await storage.save_clocks(conn, changes)
        await add_to_outbox(conn, fx.out)
    return sum(1 for o in fx.out if o.topic == topics.ROUTER_DECISIONS and o.event.type == SupervisionNotice.EVENT_TYPE)
