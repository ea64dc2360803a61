"""Mediation's handlers: dispatches and court messages from Kafka, mediator actions from HTTP, and
the time-limit tick. Every transition is a `mediation.transitioned` event; the router hears about
outcomes as feedback on its dispatch, the court about referrals, confirmations and hand-offs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from services.mediation import domain, storage
from services.mediation.domain import Status
from shared import topics
from shared.cloudevents import CloudEvent, derive_id, utcnow
from shared.contracts import (
    CaseDispatched,
    ConfirmationDecided,
    Contract,
    CourtReferral,
    DispatchAccepted,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    MediationToCourt,
    MediationTransitioned,
    SupervisionNotice,
)
from shared.messaging.consumer import Inbound, Reject
from shared.messaging.outbox import Outgoing, add_to_outbox

log = logging.getLogger(__name__)
SOURCE = domain.SOURCE
FEEDBACK = topics.feedback_topic(topics.UnitKind.MEDIATION)


class ActionRefused(ValueError):
    """A mediator action that the mediation's state (409) or its input (404/422) does not allow."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass
class Effects:
    """The events one batch or action produces."""

    out: list[Outgoing] = field(default_factory=list)

    def emit(self, topic: str, data: Contract, event_id: str, traceparent: str | None) -> None:
        self.out.append(Outgoing(topic, CloudEvent.of(data, source=SOURCE, event_id=event_id)
                                 .with_traceparent(traceparent)))


def _transitioned(fx: Effects, m: domain.Mediation, record: dict, tp: str | None) -> None:
    fx.emit(topics.MEDIATION_EVENTS, MediationTransitioned(
        case_id=UUID(m.case_id), mediation_id=m.mediation_id, origin=m.origin, committee_id=m.committee_id,
        mediator_id=m.mediator_id, from_status=record.get("from"), to_status=record["to"],
        note=record.get("note"), agreement=record.get("agreement")),
        derive_id(SOURCE, m.mediation_id, len(m.history), record["to"]), tp)


@dataclass
class Mediation:
    """Mediation's handlers with their reference data."""

    directory: domain.Directory

    async def on_dispatch(self, conn: asyncpg.Connection, item: Inbound, fx: Effects) -> None:
        """A mediation dispatch: assign a mediator with capacity and sign for it, or return it."""
        d = item.model
        assert isinstance(d, CaseDispatched)
        mid = str(d.dispatch_id)
        if await storage.exists(conn, mid):
            return
        committee = self.directory.committee_of(d.unit_id)
        specialty = committee.specialties[0] if committee and committee.specialties else None
        mediator = domain.choose_mediator(self.directory, d.unit_id, specialty, await storage.open_loads(conn)) \
            if committee else None
        common = {"case_id": d.case_id, "dispatch_id": d.dispatch_id, "unit_id": d.unit_id}
        if mediator is None:
            reason = (f"{d.unit_id} is not a mediation committee of this system" if committee is None
                      else f"no mediator of {committee.name} has spare capacity")
            fx.emit(FEEDBACK, DispatchReturned(**common, reason=reason), derive_id(SOURCE, mid, "returned"),
                    item.traceparent)
            return
        now = utcnow()
        m = domain.new_mediation(mid, str(d.case_id), "dispatch", d.unit_id, mediator.id, now)
        m.history.append({"from": None, "to": Status.ASSIGNED.value, "at": now.isoformat()})
        await storage.insert(conn, m, case_number=d.case_number, dispatch_id=d.dispatch_id, unit_id=d.unit_id,
                             specialty=specialty, traceparent=item.traceparent)
        fx.emit(FEEDBACK, DispatchAccepted(**common, note=f"调解员已受理：{committee.name}"),
                derive_id(SOURCE, mid, "accepted"), item.traceparent)
        _transitioned(fx, m, m.history[-1], item.traceparent)

    async def on_court_referral(self, conn: asyncpg.Connection, item: Inbound, fx: Effects) -> None:
        """诉前调解: the court refers a dispute; a committee serving the division takes it."""
        r = item.model
        assert isinstance(r, CourtReferral)
        if await storage.exists(conn, r.referral_id):
            return
        candidates = [c for c in self.directory.committee
                      if c.level == "county" and any(r.division_code.startswith(s) for s in c.serves)
                      and (not c.specialties or r.specialty in c.specialties)]
        candidates.sort(key=lambda c: (not (r.specialty and r.specialty in c.specialties), c.id))
        loads = await storage.open_loads(conn)
        for committee in candidates:
            mediator = domain.choose_mediator(self.directory, committee.id, r.specialty, loads)
            if mediator:
                break
        else:
            fx.emit(topics.COURT_MEDIATION, MediationToCourt(
                case_id=r.case_id, kind="outcome", mediation_id=r.referral_id, referral_id=r.referral_id,
                outcome="not_taken", note="no committee with spare capacity serves the division"),
                derive_id(SOURCE, r.referral_id, "not_taken"), item.traceparent)
            return
        now = utcnow()
        m = domain.new_mediation(r.referral_id, str(r.case_id), "court_referral", committee.id, mediator.id, now)
        m.history.append({"from": None, "to": Status.ASSIGNED.value, "at": now.isoformat()})
        await storage.insert(conn, m, case_number=r.court_case_number, referral_id=r.referral_id,
                             specialty=r.specialty, traceparent=item.traceparent)
        _transitioned(fx, m, m.history[-1], item.traceparent)

    async def on_confirmation(self, conn: asyncpg.Connection, item: Inbound, fx: Effects) -> None:
        """The court's answer on 司法确认."""
        c = item.model
        assert isinstance(c, ConfirmationDecided)
        found = await storage.load(conn, c.mediation_id)
        if found is None:
            raise Reject(f"no mediation {c.mediation_id}")
        m, _row = found
        try:
            record = m.move(Status.CONFIRMED if c.confirmed else Status.CONFIRMATION_REFUSED, utcnow(), note=c.note)
        except domain.IllegalTransition as exc:
            if m.status in (Status.CONFIRMED, Status.CONFIRMATION_REFUSED):
                return  # the same answer again
            raise Reject(str(exc)) from None
        await storage.save(conn, m, utcnow())
        _transitioned(fx, m, record, item.traceparent)


def handle_batch_with(mediation: Mediation):
    """The batch handler (events of one batch applied in order, in the batch's transaction)."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        fx = Effects()
        for item in items:
            model = item.model
            if isinstance(model, SupervisionNotice):
                continue  # 督办 notices are recorded by audit
            if isinstance(model, CaseDispatched):
                await mediation.on_dispatch(conn, item, fx)
            elif isinstance(model, CourtReferral):
                await mediation.on_court_referral(conn, item, fx)
            elif isinstance(model, ConfirmationDecided):
                await mediation.on_confirmation(conn, item, fx)
            else:
                raise Reject(f"mediation does not take {item.event.type} events")
        return fx.out

    return handle


# ---------------------------------------------------------------- mediator actions


async def act(conn: asyncpg.Connection, mediation_id: str, mediator_id: str | None, action: str, now: datetime,
              *, note: str | None = None, agreement: dict | None = None, next_step: str | None = None) -> domain.Mediation:
    """A mediator's action on a mediation: schedule, hold, agree, fail, withdraw, extend, confirm.

    The outcomes tell the router (for dispatched cases) or the court (for referrals)."""
    found = await storage.load(conn, mediation_id)
    if found is None or (mediator_id is not None and found[0].mediator_id != mediator_id):
        raise ActionRefused(404, "Mediation not found", "no such mediation of yours")
    m, row = found
    tp = row["traceparent"]
    fx = Effects()
    targets = {"schedule": Status.SCHEDULED, "hold": Status.HELD, "agree": Status.AGREED, "fail": Status.FAILED,
               "withdraw": Status.WITHDRAWN, "confirm": Status.CONFIRMATION_REQUESTED, "expire": Status.EXPIRED}
    try:
        if action == "extend":
            m.extend()
            record = {"from": m.status.value, "to": m.status.value, "at": now.isoformat(), "note": "期限延长"}
            m.history.append(record)
        else:
            details = {k: v for k, v in (("note", note), ("agreement", agreement)) if v is not None}
            record = m.move(targets[action], now, **details)
    except domain.IllegalTransition as exc:
        raise ActionRefused(409, "Not allowed now", str(exc)) from None
    _transitioned(fx, m, record, tp)
    _tell_others(fx, m, row, record, next_step, tp)
    await storage.save(conn, m, now)
    await add_to_outbox(conn, fx.out)
    return m


def _tell_others(fx: Effects, m: domain.Mediation, row, record: dict, next_step: str | None, tp: str | None) -> None:
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
