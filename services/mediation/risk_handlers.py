"""The risk register's handlers: received cases from Kafka (clustering), operators' acts from HTTP.
Each loads, lets services/mediation/risks.py decide, saves, and writes a `risk.identified` or
`risk.changed` event per change (with its actor) to the outbox in the same transaction."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.mediation import storage
from services.mediation import risks
from services.mediation.domain import SOURCE
from shared import topics
from shared.cloudevents import Actor, derive_id, utcnow
from shared.contracts import CaseDuplicateReported, CaseReceived
from shared.contracts.events import Guardian, RiskChanged, RiskIdentified
from shared.divisions import DivisionDirectory
from shared.contracts.events import CaseRated, ReopenRequested
from shared.messaging.consumer import Inbound, Reject
from shared.messaging.outbox import Emitter, Outgoing, add_to_outbox
from shared.refusals import ActionRefused


# What the register reads (shared/topics.py: the mediation-risks group on intake.cases).
# the citizen's rating and reopen request also come on intake.cases: the register does not score them
IGNORED = (CaseRated.EVENT_TYPE, ReopenRequested.EVENT_TYPE)
TAKES = (CaseReceived.EVENT_TYPE, CaseDuplicateReported.EVENT_TYPE, *IGNORED)


def _common(r: risks.Risk) -> dict:
    return {"risk_id": UUID(r.risk_id), "division_code": r.division_code, "case_ids": [UUID(c) for c in r.case_ids],
            "score": r.score, "colour": r.colour}


def emit_identified(fx: Emitter, r: risks.Risk, at: datetime, tp: str | None = None) -> None:
    """The event of a new risk."""
    fx.emit(topics.RISK_EVENTS, RiskIdentified(**_common(r), title=r.title, matter=r.matter, origin=r.origin, at=at),
            derive_id(SOURCE, "risk", r.risk_id, 1), tp)


def emit_changed(fx: Emitter, r: risks.Risk, record: dict, at: datetime, tp: str | None = None) -> None:
    """The event of one change of a risk (its history record)."""
    fx.emit(topics.RISK_EVENTS, RiskChanged(
        **_common(r), status=record["to"], previous_status=record["from"], previous_score=record["previous_score"],
        previous_colour=record["previous_colour"], guardian=Guardian(**r.guardian) if r.guardian else None,
        reason=record.get("reason"), at=at), derive_id(SOURCE, "risk", r.risk_id, len(r.history)), tp)


@dataclass
class Register:
    """The register's rules and the place names its titles use."""

    weights: risks.Weights
    divisions: DivisionDirectory

    def name_of(self, code: str) -> str:
        """A division's name for a title (the code when unknown)."""
        d = self.divisions.get(code)
        return d.name if d else code

    async def on_cases(self, conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        """A batch of received cases and repeat reports: store their signals, then open or grow
        risks where related cases cluster (one decision for the batch)."""
        arrived: dict[str, risks.Signal] = {}
        repeats: Counter[str] = Counter()
        tp = None
        for item in items:
            ev = item.model
            if isinstance(ev, CaseReceived):
                arrived[str(ev.case_id)] = risks.Signal(
                    str(ev.case_id), ev.location.division_code, risks.matter_of(ev.category), ev.received_at,
                    ev.people_involved, frozenset(ev.risk_flags))
            elif isinstance(ev, CaseDuplicateReported):
                repeats[str(ev.case_id)] += 1
            elif item.event.type in IGNORED:
                continue
            else:  # the topic's publishing contract already refuses these
                raise Reject(f"the risk register does not take {item.event.type} events")
            tp = tp or item.traceparent
        await storage.add_risk_signals(conn, arrived.values(), dict(repeats))
        now = utcnow()
        touched = await storage.risk_signals(conn, [*arrived, *repeats])
        keys = sorted({s.cluster_key for s in touched if s.cluster_key})
        if not touched:
            return []
        await storage.lock_risk_keys(conn, keys)
        open_risks = await storage.open_cluster_risks(conn, keys, [s.case_id for s in touched])
        since = min(s.received_at for s in touched) - self.weights.window
        known = await storage.related_signals(conn, keys, since, [c for r in open_risks for c in r.case_ids])
        taken = await storage.taken_cases(conn, [s.case_id for s in known])
        decided = risks.cluster(touched, known, open_risks, taken, self.weights, now, self.name_of)
        await storage.insert_risks(conn, decided.identified, now)
        await storage.save_risks(conn, [r for r, _ in decided.changed], now)
        fx = Emitter(SOURCE)
        for r in decided.identified:
            emit_identified(fx, r, now, tp)
        for r, record in decided.changed:
            emit_changed(fx, r, record, now, tp)
        return fx.out


def _division_of(codes: set[str]) -> str:
    """The smallest division covering all the cases' divisions (county 6, town 9, village 12 digits)."""
    for length in (12, 9, 6):
        heads = {c[:length] for c in codes}
        if len(heads) == 1 and all(len(c) >= length for c in codes):
            return heads.pop()
    raise ActionRefused(422, "Cases of different counties", "a risk lies within one county")


async def identify(conn: asyncpg.Connection, register: Register, case_ids: list[str], title: str,
                   assessment: float | None, allowed, actor: Actor) -> risks.Risk:
    """An operator puts cases on the register as one risk. `allowed(division)` says whether the
    operator's jurisdiction covers a division. Raises ActionRefused (422 unknown cases, 403 outside
    the jurisdiction)."""
    found = await storage.risk_signals(conn, case_ids)
    missing = sorted(set(case_ids) - {s.case_id for s in found})
    if missing:
        raise ActionRefused(422, "Unknown cases", f"the register has not received {len(missing)} of the cases"
                            " (a case is known once intake has received it)")
    if not all(allowed(s.division_code) for s in found):
        raise ActionRefused(403, "Outside your jurisdiction", "every case of a risk must lie within your divisions")
    now = utcnow()
    by_id = {s.case_id: s for s in found}
    signals = [by_id[c] for c in dict.fromkeys(case_ids)]
    risk = risks.identify(str(uuid.uuid4()), signals, register.weights, now, origin="operator", title=title,
                          division_code=_division_of({s.division_code for s in signals}), actor=actor.id,
                          assessment=assessment or 0.0)
    await storage.insert_risks(conn, [risk], now)
    fx = Emitter(SOURCE, actor=actor)
    emit_identified(fx, risk, now)
    await add_to_outbox(conn, fx.out)
    return risk


async def act(conn: asyncpg.Connection, register: Register, risk_id: str, action: str, allowed, actor: Actor,
              **details) -> risks.Risk:
    """An operator's act on a risk (assess, guard, resolve, close, escalate, care). Raises
    ActionRefused: 404 for no risk (or one outside the jurisdiction), 409 when its status does not
    allow the act, 422 when the act lacks what it needs."""
    risk = await storage.load_risk(conn, risk_id, lock=True)
    if risk is None or not allowed(risk.division_code):
        raise ActionRefused(404, "Risk not found", "no such risk within your divisions")
    signals = await storage.risk_signals(conn, risk.case_ids)
    now = utcnow()
    try:
        record = risks.act(risk, action, now, register.weights, signals, actor=actor.id, **details)
    except risks.RefusedTransition as exc:
        raise ActionRefused(409, "Not allowed now", str(exc)) from None
    except ValueError as exc:
        raise ActionRefused(422, "Incomplete act", str(exc)) from None
    await storage.save_risks(conn, [risk], now)
    fx = Emitter(SOURCE, actor=actor)
    emit_changed(fx, risk, record, now)
    await add_to_outbox(conn, fx.out)
    return risk
