"""The router's handlers: consumed events, operator actions and the supervision tick, each a thin
translation between the wire and the pure domain. EVENT_HANDLERS shows the whole event flow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable
from uuid import UUID

import asyncpg

from services.router import domain, storage
from services.router.triage import OTHER_KIND, OUT_OF_SCOPE, Candidate, Prediction, TriageModel
from shared import topics
from shared.cloudevents import CloudEvent, derive_id, utcnow
from shared.contracts import (
    Assignment,
    CallbackRecorded,
    CaseClosed,
    CaseDispatched,
    CaseDuplicateReported,
    CaseEscalated,
    CaseReceived,
    CaseReopened,
    CaseRouted,
    Contract,
    DispatchAccepted,
    DispatchProgress,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    Location,
    ManualTriageRequired,
    RoutingReason,
    SupervisionNotice,
    TriageCandidate,
    TriageCorrected,
    TriageExplanation,
)
from shared.divisions import DivisionDirectory
from shared.messaging.consumer import BatchHandler, Inbound, Reject
from shared.messaging.outbox import Outgoing, add_to_outbox

log = logging.getLogger(__name__)
SOURCE = "/onewindow/router"


@dataclass
class Effects:
    """What one batch or one operator action decided: events, changed states, clock changes."""

    states: dict[str, domain.RoutingState]
    out: list[Outgoing] = field(default_factory=list)
    changed: dict[str, domain.RoutingState] = field(default_factory=dict)
    clock_starts: list[tuple] = field(default_factory=list)
    clock_stops: list[tuple[str, str | None]] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by event id, read for the whole batch

    def emit(self, topic: str, data: Contract, event_id: str, traceparent: str | None,
             time: datetime | None = None) -> None:
        ev = CloudEvent.of(data, source=SOURCE, event_id=event_id, time=time)
        self.out.append(Outgoing(topic, ev.with_traceparent(traceparent)))

    def touch(self, state: domain.RoutingState) -> None:
        self.states[state.case_id] = self.changed[state.case_id] = state

    async def commit(self, conn: asyncpg.Connection) -> None:
        """Write states, clocks and outbox rows in the caller's transaction."""
        await storage.save_states(conn, self.changed.values())
        await storage.stop_clocks(conn, self.clock_stops)
        await storage.start_clocks(conn, self.clock_starts)
        await add_to_outbox(conn, self.out)


@dataclass
class Router:
    """The router's reference data and the decisions that need it."""

    catalogue: domain.Catalogue
    units: domain.UnitDirectory
    divisions: DivisionDirectory
    model: TriageModel | None = None

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model else None

    def predict_batch(self, items: list[Inbound]) -> dict[str, Prediction]:
        """The model's reading of every new case in a batch that it will have to triage, in one pass."""
        todo = [i for i in items if i.event.type == CaseReceived.EVENT_TYPE
                and not (i.model.category and i.model.channel.value in self.catalogue.trusted_channels)]
        if not todo or self.model is None:
            return {}
        return dict(zip((i.event.id for i in todo),
                        self.model.predict([f"{i.model.title} {i.model.description}" for i in todo])))

    def correction(self, fx: Effects, state: domain.RoutingState, kind: str, seed: str, traceparent: str | None,
                   *, by: str, category: str | None = None, unit_kind: str | None = None,
                   reason: str | None = None) -> None:
        """Record a person's correction of the triage as a labelled example (TriageCorrected): what the
        router had chosen and who had chosen it (the model, the channel, an operator, a department)."""
        facts = state.facts
        predicted = state.category or facts.get("proposed")
        cat = self.catalogue.get(predicted or "")
        chosen_by = facts.get("chosen_by")
        fx.emit(topics.ROUTER_DECISIONS, TriageCorrected(
            case_id=UUID(state.case_id), case_number=state.case_number, correction=kind,
            predicted_category=predicted, predicted_kind=cat.unit_kind if cat else None,
            predicted_by=chosen_by, model_reading=facts.get("model_reading"),
            corrected_category=category, corrected_kind=unit_kind, reason=reason, by=by,
            model_version=facts.get("model_version") if facts.get("model_reading") else None,
            catalogue_version=self.catalogue.version,
        ), derive_id(SOURCE, seed, "corrected"), traceparent)

    @staticmethod
    def remember_reading(state: domain.RoutingState, decision, chosen_by: str | None) -> None:
        """Keep what chose the case's matter, and the model's own reading, for later corrections."""
        p = decision.prediction if isinstance(decision, domain.ManualQueue) else (
            decision.triage.prediction if decision.triage else None)
        state.facts["chosen_by"] = chosen_by
        if p is not None:
            reading = triage_reading(p)
            state.facts["model_reading"] = reading
            state.facts["model_version"] = decision.model_version if isinstance(decision, domain.ManualQueue) \
                else decision.triage.model_version
            if isinstance(decision, domain.ManualQueue):
                state.facts["proposed"] = reading

    # ------------------------------------------------------------ shared steps

    def dispatch_plan(self, fx: Effects, state: domain.RoutingState, plan: domain.Plan, seed: str,
                      traceparent: str | None, started_at: datetime) -> None:
        """Carry out a plan: routed event, one dispatch per unit on its topic, two clocks per dispatch."""
        ids = domain.new_dispatch_ids(seed, plan)
        state.apply_plan(plan, ids)
        fx.touch(state)
        lead = plan.lead
        now = utcnow()
        fx.emit(topics.ROUTER_DECISIONS, CaseRouted(
            case_id=UUID(state.case_id), case_number=state.case_number, category=plan.category.code,
            unit_kind=lead.kind, unit_id=lead.id, unit_name=lead.name, level=lead.level,
            rule_ids=list(plan.rule_ids), catalogue_version=self.catalogue.version, confidence=plan.confidence,
            reason=plan.reason, risk_colour=plan.risk, risk_reasons=list(plan.risk_reasons),
            assignments=[Assignment(dispatch_id=UUID(i), unit_id=a.unit.id, unit_kind=a.unit.kind,
                                    unit_name=a.unit.name, level=a.unit.level, role=a.role)
                         for i, a in zip(ids, plan.assignments)],
            triage=self.explanation(plan.triage),
        ), derive_id(SOURCE, ids[0], "routed"), traceparent, now)
        facts = state.facts
        for n, (dispatch_id, a) in enumerate(zip(ids, plan.assignments), start=1):
            fx.emit(topics.dispatch_topic(a.unit.kind), CaseDispatched(
                case_id=UUID(state.case_id), case_number=state.case_number, dispatch_id=UUID(dispatch_id),
                unit_kind=a.unit.kind, unit_id=a.unit.id, unit_name=a.unit.name, level=a.unit.level,
                category=plan.category.code, title=facts["title"], description=facts["description"],
                location=Location.model_validate(facts["location"]), acknowledge_by=plan.acknowledge_by, resolve_by=plan.resolve_by,
                role=a.role, risk_colour=plan.risk, reason=plan.reason,
            ), dispatch_id, traceparent, now + timedelta(microseconds=n))  # dispatches follow their decision
            for kind, due in (("acknowledge", plan.acknowledge_by), ("resolve", plan.resolve_by)):
                clock = domain.Clock(dispatch_id, kind, started_at, due)
                fx.clock_starts.append((UUID(dispatch_id), kind, UUID(state.case_id), a.unit.id, a.unit.kind.value,
                                        state.division_code, started_at, due,
                                        clock.next_change(self.catalogue.yellow_share), traceparent))

    def explanation(self, t: domain.Triage | None) -> TriageExplanation | None:
        """The model's reading as the routed event carries it."""
        if t is None or t.model_version is None:
            return None
        return TriageExplanation(model_version=t.model_version, probability=t.probability,
                                 kind_probability=t.confidence, threshold=self.model.threshold if self.model else 0,
                                 features=list(t.features), candidates=_candidates(t.candidates))

    def to_manual(self, fx: Effects, state: domain.RoutingState, reason: str, seed: str, traceparent: str | None,
                  candidates: tuple[Candidate, ...] = (), model_version: str | None = None) -> None:
        """Put a case in the command centre's manual queue, with the model's candidates for the operator."""
        for d in state.dispatches:
            if d.open:
                fx.clock_stops.append((d.dispatch_id, None))
        state.to_manual()
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, ManualTriageRequired(
            case_id=UUID(state.case_id), case_number=state.case_number, reason=reason,
            catalogue_version=self.catalogue.version, model_version=model_version,
            candidates=_candidates(candidates)), derive_id(SOURCE, seed, "manual"), traceparent)

    def replan(self, fx: Effects, state: domain.RoutingState, seed: str, traceparent: str | None,
               reason: RoutingReason, lead: domain.Unit | None = None,
               category: domain.Category | None = None) -> None:
        """Dispatch again (after a return, transfer, rework, escalation or by an operator)."""
        category = category or self.catalogue.get(state.category or "")
        if category is None:
            return self.to_manual(fx, state, f"category {state.category!r} no longer catalogued", seed, traceparent)
        now = utcnow()
        plan = domain.plan_for(category, state.risk, state.division_code, self.catalogue, self.units, now,
                               exclude=frozenset(state.excluded), lead=lead, reason=reason,
                               rule_ids=(f"{reason.value}:{category.code}",))
        if isinstance(plan, domain.ManualQueue):
            return self.to_manual(fx, state, plan.reason, seed, traceparent)
        if domain.red_without_police(plan):
            return self.to_manual(fx, state, f"red case and no police unit for {state.division_code}", seed,
                                  traceparent)
        self.dispatch_plan(fx, state, plan, seed, traceparent, now)

    # ------------------------------------------------------------ consumed events

    def on_case_received(self, item: Inbound, fx: Effects) -> None:
        """Route a new case: dispatch it to its units, or put it in the manual queue."""
        case = item.model
        assert isinstance(case, CaseReceived)
        cid = str(case.case_id)
        if cid in fx.states:
            return  # already routed
        if self.divisions.get(case.location.division_code) is None:
            raise Reject(f"unknown division {case.location.division_code}")
        facts = domain.CaseFacts(f"{case.title} {case.description}", case.category, case.location.division_code,
                                 case.risk_flags, case.received_at, channel=case.channel.value)
        try:
            decision = domain.route(facts, self.catalogue, self.units, self.model, fx.predictions.get(item.event.id))
        except domain.UnknownCategory as exc:
            raise Reject(str(exc)) from None
        state = domain.RoutingState(
            cid, case.case_number, domain.CaseStatus.MANUAL, self.catalogue.version, utcnow(),
            division_code=case.location.division_code,
            facts={"title": case.title, "description": case.description,
                   "location": case.location.model_dump(mode="json")},
            traceparent=item.traceparent,
        )
        if isinstance(decision, domain.ManualQueue):
            self.remember_reading(state, decision, None)
            return self.to_manual(fx, state, decision.reason, item.event.id, item.traceparent,
                                  decision.candidates, decision.model_version)
        if decision.triage is None:
            chosen_by = "channel"
        else:
            chosen_by = "safety" if decision.category.code != triage_reading(decision.triage.prediction) else "model"
        self.remember_reading(state, decision, chosen_by)
        self.dispatch_plan(fx, state, decision, item.event.id, item.traceparent, case.received_at)

    def on_duplicate_reported(self, item: Inbound, fx: Effects) -> None:
        """A repeat report (重复件): counted; repeats raise the risk of the next dispatch."""
        state = fx.states.get(item.event.subject)
        if state is not None:
            state.repeats += 1
            if state.repeats >= self.catalogue.risk.repeats_to_raise and state.risk != "red":
                colours = domain.COLOUR_ORDER
                state.risk = colours[min(colours.index(state.risk) + 1, len(colours) - 1)]
            fx.touch(state)

    def on_dispatch_accepted(self, item: Inbound, fx: Effects) -> None:
        """签收: the acknowledge clock stops."""
        fb = item.model
        state, d = self._feedback(item, fx, fb.dispatch_id, fb.unit_id)
        if state.accept(d.dispatch_id, d.unit_id):
            fx.clock_stops.append((d.dispatch_id, "acknowledge"))
            fx.touch(state)

    def on_dispatch_progress(self, item: Inbound, fx: Effects) -> None:
        """进展: checked; the event itself is the record."""
        fb = item.model
        self._feedback(item, fx, fb.dispatch_id, fb.unit_id)

    def on_dispatch_resolved(self, item: Inbound, fx: Effects) -> None:
        """办结: the dispatch's clocks stop; the lead's resolution awaits the citizen's callback (回访)."""
        fb = item.model
        state, d = self._feedback(item, fx, fb.dispatch_id, fb.unit_id)
        if state.resolve(d.dispatch_id, d.unit_id):
            fx.clock_stops.append((d.dispatch_id, None))
            fx.touch(state)

    def on_dispatch_returned(self, item: Inbound, fx: Effects) -> None:
        """退单: dispatch again without that unit; after too many returns, the manual queue."""
        fb = item.model
        state, d = self._feedback(item, fx, fb.dispatch_id, fb.unit_id)
        if state.end_dispatch(d.dispatch_id, d.unit_id) is None:
            return  # a late return of an ended dispatch
        fx.clock_stops.append((d.dispatch_id, None))
        fx.touch(state)
        if d.role != "lead":
            return
        self.correction(fx, state, "return", item.event.id, item.traceparent, by=d.unit_id, reason=fb.reason)
        state.returns += 1
        state.excluded.append(d.unit_id)
        if state.returns > self.catalogue.max_returns:
            return self.to_manual(fx, state, f"returned {state.returns} times", item.event.id, item.traceparent)
        self.replan(fx, state, item.event.id, item.traceparent, RoutingReason.RETURN)

    def on_dispatch_transferred(self, item: Inbound, fx: Effects) -> None:
        """转办: to the named unit (or the unit of the named kind) serving the case's division."""
        fb = item.model
        assert isinstance(fb, DispatchTransferred)
        state, d = self._feedback(item, fx, fb.dispatch_id, fb.unit_id)
        target = None
        if fb.target_unit_id:
            target = self.units.get(fb.target_unit_id)
            if target is None or not target.serves_division(state.division_code):
                raise Reject(f"transfer target {fb.target_unit_id!r} does not serve division {state.division_code}")
        elif fb.target_kind:
            cat = self.catalogue.get(state.category or "")
            target = domain.find_unit(self.units, fb.target_kind, cat.level if cat else domain.Level.TOWN,
                                      state.division_code)
            if target is None:
                raise Reject(f"no {fb.target_kind.value} unit serves division {state.division_code}")
        else:
            raise Reject("a transfer names a target unit or unit kind")
        if state.end_dispatch(d.dispatch_id, d.unit_id) is None:
            return
        fx.clock_stops.append((d.dispatch_id, None))
        fx.touch(state)
        if d.role == "lead" and target.kind.value != d.unit_kind:
            self.correction(fx, state, "transfer", item.event.id, item.traceparent, by=d.unit_id,
                            unit_kind=target.kind.value, reason=fb.reason)
            state.facts["chosen_by"] = "department"
        if d.role == "lead":
            self.replan(fx, state, item.event.id, item.traceparent, RoutingReason.TRANSFER, lead=target)

    def _feedback(self, item: Inbound, fx: Effects, dispatch_id: UUID, unit_id: str):
        state = fx.states.get(item.event.subject)
        if state is None:
            raise Reject(f"no case {item.event.subject} was dispatched")
        try:
            d = state.dispatch(str(dispatch_id), unit_id)
        except domain.FeedbackRefused as exc:
            raise Reject(str(exc)) from None
        if item.record.topic != topics.feedback_topic(d.unit_kind):
            raise Reject(f"feedback on {item.record.topic} for a dispatch to a {d.unit_kind} unit")
        return state, d


def triage_reading(p: Prediction) -> str:
    """The model's own reading of a case: its most probable kind's best item, or out of scope."""
    if p.kind == OTHER_KIND or p.kind not in p.best_by_kind:
        return OUT_OF_SCOPE
    return p.best_by_kind[p.kind].category


def _candidates(cands) -> list[TriageCandidate]:
    return [TriageCandidate(category=c.category, unit_kind=c.unit_kind, probability=c.probability) for c in cands]


EVENT_HANDLERS: dict[str, Callable[[Router, Inbound, Effects], None]] = {
    CaseReceived.EVENT_TYPE: Router.on_case_received,
    CaseDuplicateReported.EVENT_TYPE: Router.on_duplicate_reported,
    DispatchAccepted.EVENT_TYPE: Router.on_dispatch_accepted,
    DispatchProgress.EVENT_TYPE: Router.on_dispatch_progress,
    DispatchResolved.EVENT_TYPE: Router.on_dispatch_resolved,
    DispatchReturned.EVENT_TYPE: Router.on_dispatch_returned,
    DispatchTransferred.EVENT_TYPE: Router.on_dispatch_transferred,
}



def build_batch_handler(router: Router) -> BatchHandler:
    """The router's batch handler: one locked state read, the pure decisions, one write of everything."""

    async def handle(conn: asyncpg.Connection, items: list[Inbound]) -> list[Outgoing]:
        fx = Effects(await storage.load_states(conn, {i.event.subject for i in items}))
        fx.predictions = router.predict_batch(items)
        for item in items:
            handler = EVENT_HANDLERS.get(item.event.type)
            if handler is None:
                raise Reject(f"the router does not take {item.event.type} events")
            handler(router, item, fx)
        await storage.save_states(conn, fx.changed.values())
        await storage.stop_clocks(conn, fx.clock_stops)
        await storage.start_clocks(conn, fx.clock_starts)
        return fx.out

    return handle


# ---------------------------------------------------------------- operator actions


class ActionRefused(ValueError):
    """An operator action that does not fit the case's state (answered 409) or its input (422)."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


async def record_callback(conn: asyncpg.Connection, router: Router, case_id: UUID, satisfied: bool,
                          note: str | None, traceparent: str | None) -> domain.RoutingState:
    """回访: satisfied closes the case; unsatisfied reopens it for rework (重办), the second time escalated."""
    fx = Effects(await storage.load_states(conn, [str(case_id)]))
    state = fx.states.get(str(case_id))
    if state is None:
        raise ActionRefused(404, "Case not found", "the router has no such case")
    if state.status is not domain.CaseStatus.AWAITING_CALLBACK:
        raise ActionRefused(409, "No callback due", f"the case is {state.status.value}")
    lead = next(d for d in reversed(state.dispatches) if d.role == "lead")
    seed = f"callback:{lead.dispatch_id}"
    number = state.case_number
    fx.emit(topics.ROUTER_DECISIONS, CallbackRecorded(case_id=case_id, case_number=number, satisfied=satisfied,
                                                      note=note), derive_id(SOURCE, seed), traceparent)
    if satisfied:
        state.close()
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, CaseClosed(case_id=case_id, case_number=number,
                                                    dispatch_id=UUID(lead.dispatch_id), unit_id=lead.unit_id,
                                                    reason="resolved; the citizen is satisfied"),
                derive_id(SOURCE, seed, "closed"), traceparent, utcnow() + timedelta(microseconds=1))
    else:
        state.reopened += 1
        fx.emit(topics.ROUTER_DECISIONS, CaseReopened(case_id=case_id, case_number=number,
                                                      reason=note or "the citizen is not satisfied"),
                derive_id(SOURCE, seed, "reopened"), traceparent, utcnow() + timedelta(microseconds=1))
        unit = router.units.get(lead.unit_id)
        if state.reopened == 1 and unit is not None:
            router.replan(fx, state, seed, traceparent, RoutingReason.REWORK, lead=unit)
        else:
            superior = domain.superior_of(router.units, unit, state.division_code) if unit else None
            if superior is None:
                router.to_manual(fx, state, "reopened again and no unit above", seed, traceparent)
            else:
                fx.emit(topics.ROUTER_DECISIONS, CaseEscalated(
                    case_id=case_id, dispatch_id=UUID(lead.dispatch_id), from_unit_id=lead.unit_id,
                    to_unit_id=superior.id, to_level=superior.level, reason="reopened after rework"),
                    derive_id(SOURCE, seed, "escalated"), traceparent)
                router.replan(fx, state, seed, traceparent, RoutingReason.ESCALATION, lead=superior)
    await fx.commit(conn)
    return state


async def manual_dispatch(conn: asyncpg.Connection, router: Router, case_id: UUID, category: str,
                          unit_id: str | None, operator: str, traceparent: str | None) -> domain.RoutingState:
    """An operator dispatches a case from the manual queue, or reassigns an open one."""
    fx = Effects(await storage.load_states(conn, [str(case_id)]))
    state = fx.states.get(str(case_id))
    if state is None:
        raise ActionRefused(404, "Case not found", "the router has no such case")
    if state.status in (domain.CaseStatus.CLOSED, domain.CaseStatus.AWAITING_CALLBACK):
        raise ActionRefused(409, "Case not open", f"the case is {state.status.value}")
    cat = router.catalogue.get(category)
    if cat is None:
        raise ActionRefused(422, "Unknown category", f"{category!r} is not in catalogue {router.catalogue.version}")
    unit = None
    if unit_id:
        unit = router.units.get(unit_id)
        if unit is None or not unit.serves_division(state.division_code):
            raise ActionRefused(422, "Unit cannot take the case", f"{unit_id!r} does not serve {state.division_code}")
    for d in state.dispatches:
        if d.open:
            fx.clock_stops.append((d.dispatch_id, None))
    seed = f"manual:{case_id}:{len(state.dispatches)}:{operator}"
    if state.status is domain.CaseStatus.MANUAL:
        router.correction(fx, state, "manual_dispatch", seed, traceparent, by=operator, category=cat.code,
                          unit_kind=cat.unit_kind.value)
    elif state.category != cat.code:
        router.correction(fx, state, "reassignment", seed, traceparent, by=operator, category=cat.code,
                          unit_kind=cat.unit_kind.value)
    state.facts["chosen_by"] = "operator"
    router.replan(fx, state, seed, traceparent, RoutingReason.MANUAL, lead=unit, category=cat)
    await fx.commit(conn)
    return state


async def pause_or_resume(conn: asyncpg.Connection, router: Router, dispatch_id: UUID, pause: bool,
                          reason: str, now: datetime) -> list[dict]:
    """Pause (with a reason) or resume the running clocks of a dispatch; a resumed due time moves on."""
    rows = await storage.clocks_of_dispatch(conn, dispatch_id)
    if not rows:
        raise ActionRefused(404, "No running clock", "the dispatch has no running clock")
    updates, out = [], []
    for r in rows:
        clock = storage.clock_of(r)
        clock = clock.pause(now) if pause else clock.resume(now)
        updates.append((dispatch_id, clock.kind, clock.colour.value, clock.started_at, clock.due_at,
                        clock.paused_at, reason if pause else None, clock.next_change(router.catalogue.yellow_share)))
        out.append({"kind": clock.kind, "due_at": clock.due_at.isoformat(), "paused": clock.paused_at is not None})
    await storage.save_clocks(conn, updates)
    return out


# ---------------------------------------------------------------- supervision


async def supervise_once(pool: asyncpg.Pool, router: Router, now: datetime) -> int:
    """One supervision tick (督办): turn due clocks yellow or red, notify the unit (its dispatch topic)
    and audit, and at red escalate to the level above. Returns the notices sent.

    `now` is a parameter so tests drive time. Notice ids derive from (dispatch, clock, colour): a
    tick repeated after a crash sends nothing twice.
    """
    share = router.catalogue.yellow_share
    async with pool.acquire() as conn, conn.transaction():
        rows = await storage.due_clocks(conn, now)
        fx = Effects({})
        updates = []
        for r in rows:
            clock = storage.clock_of(r)
            colour = clock.colour_at(now, share)
            changed = domain.Clock(clock.dispatch_id, clock.kind, clock.started_at, clock.due_at, colour)
            updates.append((r["dispatch_id"], clock.kind, colour.value, clock.started_at, clock.due_at, None, None,
                            changed.next_change(share)))
            if colour is clock.colour:
                continue
            notice = SupervisionNotice(case_id=r["case_id"], dispatch_id=r["dispatch_id"], unit_id=r["unit_id"],
                                       clock=clock.kind, colour=colour.value, due_at=clock.due_at)
            seed = (SOURCE, clock.dispatch_id, clock.kind, colour.value)
            tp = r["traceparent"]
            fx.emit(topics.ROUTER_DECISIONS, notice, derive_id(*seed), tp)
            fx.emit(topics.dispatch_topic(r["unit_kind"]), notice, derive_id(*seed, "unit"), tp)
            unit = router.units.get(r["unit_id"])
            superior = domain.superior_of(router.units, unit, r["division_code"]) if unit else None
            if colour is domain.ClockColour.RED and superior is not None:
                fx.emit(topics.ROUTER_DECISIONS, CaseEscalated(
                    case_id=r["case_id"], dispatch_id=r["dispatch_id"], from_unit_id=r["unit_id"],
                    to_unit_id=superior.id, to_level=superior.level, reason=f"{clock.kind} deadline passed"),
                    derive_id(*seed, "escalated"), tp)
                fx.emit(topics.dispatch_topic(superior.kind), notice, derive_id(*seed, "superior"), tp)
        await storage.save_clocks(conn, updates)
        await add_to_outbox(conn, fx.out)
    return sum(1 for o in fx.out if o.topic == topics.ROUTER_DECISIONS and o.event.type == SupervisionNotice.EVENT_TYPE)


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
