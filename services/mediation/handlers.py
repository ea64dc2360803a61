"""Mediation's handlers: dispatches and court messages from Kafka, mediator actions from HTTP, and
the time-limit tick; each loads, lets the domain decide, and saves. Every transition is a
`mediation.transitioned` event; the router hears about outcomes as feedback on its dispatch, the
court about referrals, confirmations and hand-offs. EVENT_HANDLERS shows the whole event flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable
from uuid import UUID

import asyncpg

from services.mediation import domain, storage
from services.mediation.domain import Status
from shared import topics
from shared.cloudevents import Actor, derive_id, utcnow
from shared.contracts import (
    CaseDispatched,
    ConfirmationDecided,
    CourtReferral,
    DispatchAccepted,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    MediationToCourt,
    MediationTransitioned,
    SupervisionNotice,
)
from shared.contracts.events import DispatchUrged, ExtensionDecided, ResolutionReviewed, ReturnReviewed
from shared.messaging.consumer import Inbound, Reject
from shared.messaging.outbox import Emitter, Outgoing, add_to_outbox
from shared.refusals import ActionRefused

SOURCE = domain.SOURCE
FEEDBACK = topics.feedback_topic(topics.UnitKind.MEDIATION)


def _transitioned(fx: Emitter, m: domain.Mediation, record: dict, tp: str | None) -> None:
    fx.emit(topics.MEDIATION_EVENTS, MediationTransitioned(
        case_id=UUID(m.case_id), mediation_id=m.mediation_id, origin=m.origin, committee_id=m.committee_id,
        mediator_id=m.mediator_id, from_status=record.get("from"), to_status=record["to"],
        note=record.get("note"), agreement=record.get("agreement")),
        derive_id(SOURCE, m.mediation_id, len(m.history), record["to"]), tp)


@dataclass
class Mediation:
    """Mediation's event handlers with their reference data."""

    directory: domain.Directory

    async def on_dispatch(self, conn: asyncpg.Connection, item: Inbound, fx: Emitter) -> None:
        """A mediation dispatch: assign a mediator with capacity and sign for it, or return it."""
        d = item.model
        assert isinstance(d, CaseDispatched)
        mid = str(d.dispatch_id)
        if await storage.exists(conn, mid):
            return
        placed = domain.place_dispatch(self.directory, d.unit_id, await storage.open_loads(conn))
        common = {"case_id": d.case_id, "dispatch_id": d.dispatch_id, "unit_id": d.unit_id}
        if isinstance(placed, str):
            fx.emit(FEEDBACK, DispatchReturned(**common, reason=placed), derive_id(SOURCE, mid, "returned"),
                    item.traceparent)
            return
        m = domain.start(mid, str(d.case_id), "dispatch", placed, utcnow())
        await storage.insert(conn, m, case_number=d.case_number, dispatch_id=d.dispatch_id, unit_id=d.unit_id,
                             specialty=placed.specialty, traceparent=item.traceparent,
                             division_code=d.location.division_code)
        fx.emit(FEEDBACK, DispatchAccepted(**common, note=f"调解员已受理：{placed.committee.name}"),
                derive_id(SOURCE, mid, "accepted"), item.traceparent)
        _transitioned(fx, m, m.history[-1], item.traceparent)

    async def on_supervision_notice(self, conn: asyncpg.Connection, item: Inbound, fx: Emitter) -> None:
        """Nothing to do: the router's 督办 notices on a mediation dispatch are for the record (audit
        keeps them); mediation's own time limit is the statutory one, enforced by `expire_overdue`."""

    async def on_court_referral(self, conn: asyncpg.Connection, item: Inbound, fx: Emitter) -> None:
        """诉前调解: the court refers a dispute; a committee serving the division takes it, or the court
        hears it was not taken."""
        r = item.model
        assert isinstance(r, CourtReferral)
        if await storage.exists(conn, r.referral_id):
            return
        placed = domain.place_referral(self.directory, r.division_code, r.specialty, await storage.open_loads(conn))
        if placed is None:
            fx.emit(topics.COURT_MEDIATION, MediationToCourt(
                case_id=r.case_id, kind="outcome", mediation_id=r.referral_id, referral_id=r.referral_id,
                outcome="not_taken", note="no committee with spare capacity serves the division"),
                derive_id(SOURCE, r.referral_id, "not_taken"), item.traceparent)
            return
        m = domain.start(r.referral_id, str(r.case_id), "court_referral", placed, utcnow())
        await storage.insert(conn, m, case_number=r.court_case_number, referral_id=r.referral_id,
                             specialty=r.specialty, traceparent=item.traceparent, division_code=r.division_code)
        _transitioned(fx, m, m.history[-1], item.traceparent)

    async def on_confirmation(self, conn: asyncpg.Connection, item: Inbound, fx: Emitter) -> None:
        """The court's answer on 司法确认."""
        c = item.model
        assert isinstance(c, ConfirmationDecided)
        found = await storage.load(conn, c.mediation_id)
        if found is None:
            raise Reject(f"no mediation {c.mediation_id}")
        m, _row = found
        now = utcnow()
        try:
            record = m.move(Status.CONFIRMED if c.confirmed else Status.CONFIRMATION_REFUSED, now, note=c.note)
        except domain.IllegalTransition as exc:
            if m.status in (Status.CONFIRMED, Status.CONFIRMATION_REFUSED):
                return  # the same answer again
            raise Reject(str(exc)) from None
        await storage.save(conn, m, now)
        _transitioned(fx, m, record, item.traceparent)


# Every type that may arrive on mediation's topics (shared/topics.py: dispatch.mediation, court.referrals).
EVENT_HANDLERS: dict[str, Callable[[Mediation, asyncpg.Connection, Inbound, Emitter], Awaitable[None]]] = {
    CaseDispatched.EVENT_TYPE: Mediation.on_dispatch,
    SupervisionNotice.EVENT_TYPE: Mediation.on_supervision_notice,
    # 催办, an extension decision and a review of a resolution are for the record too (audit keeps
    # them); a rejected resolution comes back as a new dispatch
    DispatchUrged.EVENT_TYPE: Mediation.on_supervision_notice,
    ExtensionDecided.EVENT_TYPE: Mediation.on_supervision_notice,
    ResolutionReviewed.EVENT_TYPE: Mediation.on_supervision_notice,
    ReturnReviewed.EVENT_TYPE: Mediation.on_supervision_notice,
    CourtReferral.EVENT_TYPE: Mediation.on_court_referral,
    ConfirmationDecided.EVENT_TYPE: Mediation.on_confirmation,
}


def handle_batch_with(mediation: Mediation):
    """The batch handler (events of one batch applied in order, in the batch's transaction)."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        fx = Emitter(SOURCE)
        for item in items:
            handler = EVENT_HANDLERS.get(item.event.type)
            if handler is None:  # the topics' publishing contract already refuses these; never applied
                raise Reject(f"mediation does not take {item.event.type} events")
            await handler(mediation, conn, item, fx)
        return fx.out

    return handle


# ---------------------------------------------------------------- mediator actions


async def act(conn: asyncpg.Connection, mediation_id: str, mediator_id: str | None, action: str, now: datetime,
              *, note: str | None = None, agreement: dict | None = None, next_step: str | None = None,
              actor: Actor | None = None) -> domain.Mediation:
    """A mediator's action on a mediation: schedule, hold, agree, fail, withdraw, extend, confirm
    (`mediator_id` None: the time limit's own "expire"), recorded as done by `actor` (default: the
    mediator, or the service for the time limit).

    The outcomes tell the router (for dispatched cases) or the court (for referrals). Raises
    ActionRefused: 404 for another mediator's or no mediation, 409 when its state does not allow it."""
    found = await storage.load(conn, mediation_id)
    if found is None or (mediator_id is not None and found[0].mediator_id != mediator_id):
        raise ActionRefused(404, "Mediation not found", "no such mediation of yours")
    m, row = found
    tp = row["traceparent"]
    try:
        record = domain.apply_action(m, action, now, note=note, agreement=agreement)
    except domain.IllegalTransition as exc:
        raise ActionRefused(409, "Not allowed now", str(exc)) from None
    fx = Emitter(SOURCE, actor=actor or (Actor(mediator_id, "mediator") if mediator_id else None))
    _transitioned(fx, m, record, tp)
    _tell_others(fx, m, row, record, next_step, tp)
    await storage.save(conn, m, now)
    await add_to_outbox(conn, fx.out)
    return m


def _tell_others(fx: Emitter, m: domain.Mediation, row, record: dict, next_step: str | None, tp: str | None) -> None:
    """Outcomes go back where the mediation came from; a failure goes on as the party chooses."""
    seed = (SOURCE, m.mediation_id, len(m.history))
    case_id = UUID(m.case_id)
    if m.status is Status.CONFIRMATION_REQUESTED:
        fx.emit(topics.COURT_MEDIATION, MediationToCourt(case_id=case_id, kind="confirmation_request",
                                                         mediation_id=m.mediation_id, referral_id=row["referral_id"],
                                                         agreement=m.agreement), derive_id(*seed, "court"), tp)
        return
    if m.status not in domain.OUTCOMES:
        return
    if m.origin == "court_referral":
        fx.emit(topics.COURT_MEDIATION, MediationToCourt(case_id=case_id, kind="outcome", mediation_id=m.mediation_id,
                                                         referral_id=row["referral_id"], outcome=m.status.value,
                                                         agreement=m.agreement, note=record.get("note")),
                derive_id(*seed, "court"), tp)
        return
    common = {"case_id": case_id, "dispatch_id": row["dispatch_id"], "unit_id": row["unit_id"]}
    if m.status is Status.AGREED:
        text = (m.agreement or {}).get("text", "")
        fx.emit(FEEDBACK, DispatchResolved(**common, summary=f"调解成功：{text}"[:5000]), derive_id(*seed, "fb"), tp)
    elif m.status is Status.WITHDRAWN:
        fx.emit(FEEDBACK, DispatchResolved(**common, summary="申请人撤回调解申请"), derive_id(*seed, "fb"), tp)
    elif m.status is Status.FAILED and next_step == "litigation":
        fx.emit(topics.COURT_MEDIATION, MediationToCourt(case_id=case_id, kind="litigation_handoff",
                                                         mediation_id=m.mediation_id, outcome="failed",
                                                         note=record.get("note")), derive_id(*seed, "court"), tp)
        fx.emit(FEEDBACK, DispatchTransferred(**common, reason="调解不成，当事人选择诉讼",
                                              target_kind=topics.UnitKind.COURT), derive_id(*seed, "fb"), tp)
    else:  # failed (back to the router) or expired
        reason = "调解期限届满" if m.status is Status.EXPIRED else "调解不成，退回指挥中心"
        fx.emit(FEEDBACK, DispatchReturned(**common, reason=reason), derive_id(*seed, "fb"), tp)


async def expire_overdue(pool: asyncpg.Pool, now: datetime) -> int:
    """Time-limit tick: open mediations past their deadline expire (each once)."""
    async with pool.acquire() as conn, conn.transaction():
        ids = await storage.overdue(conn, now)
        for mediation_id in ids:
            await act(conn, mediation_id, None, "expire", now, note="调解期限届满")
    return len(ids)
