"""The routing desk: the router's workflow rules as plain Python (no broker, no database).

A new case is routed or queued for a person; a unit's return, transfer or resolution, the
citizen's callback (回访), an operator's dispatch and the supervision tick (督办) each decide what
happens next. The desk writes what it decided into an `Outcome` (the handlers' `Effects`): events,
changed case states, clocks to start and stop. The handlers load the states before and save
everything after, in one transaction.

Every event id derives from what caused it (`derive_id`), so a replay or a retry decides the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable, Protocol
from uuid import UUID

from services.router import domain, grids as grid_units, lifecycle
from services.router.triage import OTHER_KIND, OUT_OF_SCOPE, Candidate, Prediction, TriageModel
from shared import topics
from shared.cloudevents import Actor, derive_id, utcnow
from shared.contracts.events import (
    CallbackOutcome,
    CaseClosedDirectly,
    CaseMerged,
    CaseRefused,
    ClockPaused,
    ClockResumed,
    DispatchUrged,
    DispositionCode,
    ExtensionDecided,
    ExtensionRequested,
    CaseRated,
    CaseSplit,
    ReopenRequested,
    ResolutionReviewed,
    ReturnHeldForReview,
    ReturnReviewed,
    SplitPart,
)
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
from shared.grids import GridDirectory, load_grids
from shared.refusals import ActionRefused

SOURCE = "/onewindow/router"


class EventRefused(ValueError):
    """An event the rules can never apply (an unknown division, feedback for another unit's dispatch):
    the handler dead-letters it, and the department is told why."""


class Outcome(Protocol):
    """Where the desk writes what one batch or one act decided (the handlers' `Effects`)."""

    states: dict[str, domain.RoutingState]
    clock_starts: list[tuple]
    clock_stops: list[tuple[str, str | None]]
    predictions: dict[str, Prediction]

    def touch(self, state: domain.RoutingState) -> None:
        """Mark a case's state as changed (to be saved)."""

    def emit(self, topic: str, data: Contract, event_id: str, traceparent: str | None,
             time: datetime | None = None, actor: Actor | None = None) -> None:
        """Add an event on a topic."""


@dataclass(frozen=True)
class SplitRequest:
    """One part of a report an operator splits (拆单): its category (or a free-text one and a unit),
    optionally the unit, and the part of the report it covers."""

    summary: str
    category: str | None = None
    category_text: str | None = None
    unit_id: str | None = None


@dataclass(frozen=True)
class Cause:
    """The event a decision answers: its id (the seed of every id derived from it), its subject (the
    case), the topic it came on and its trace."""

    event_id: str
    subject: str | None
    topic: str
    traceparent: str | None
    actor: Actor | None = None  # who the cause names as its author (ce_actor)


@dataclass
class RoutingDesk:
    """The router's reference data and the workflow decisions that need it."""

    catalogue: domain.Catalogue
    units: domain.UnitDirectory
    divisions: DivisionDirectory
    model: TriageModel | None = None
    now: Callable[[], datetime] = utcnow  # the wall clock of decisions (events' times, re-plans' deadlines)
    grids: GridDirectory = field(default_factory=load_grids)  # the grids and their access list

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model else None

    def predict_batch(self, cases: dict[str, CaseReceived]) -> dict[str, Prediction]:
        """The model's reading of every new case (by event id) that it will have to triage, in one pass."""
        todo = {event_id: c for event_id, c in cases.items()
                if not (c.category and c.channel.value in self.catalogue.trusted_channels)}
        if not todo or self.model is None:
            return {}
        return dict(zip(todo, self.model.predict([f"{c.title} {c.description}" for c in todo.values()])))

    # ------------------------------------------------------------ shared steps

    def correction(self, fx: Outcome, state: domain.RoutingState, kind: str, seed: str, traceparent: str | None,
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
    def remember_reading(state: domain.RoutingState, decision: domain.Plan | domain.ManualQueue,
                         chosen_by: str | None) -> None:
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

    def dispatch_plan(self, fx: Outcome, state: domain.RoutingState, plan: domain.Plan, seed: str,
                      traceparent: str | None, started_at: datetime) -> None:
        """Carry out a plan: routed event, one dispatch per unit on its topic, two clocks per dispatch."""
        ids = domain.new_dispatch_ids(seed, plan)
        state.apply_plan(plan, ids)
        fx.touch(state)
        lead = plan.lead
        now = self.now()
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
                location=Location.model_validate(facts["location"]), acknowledge_by=plan.acknowledge_by,
                resolve_by=plan.resolve_by, role=a.role, risk_colour=plan.risk, reason=plan.reason,
            ), dispatch_id, traceparent, now + timedelta(microseconds=n))  # dispatches follow their decision
            for kind, due in (("acknowledge", plan.acknowledge_by), ("resolve", plan.resolve_by)):
                clock = domain.Clock(dispatch_id, kind, started_at, due, limit_unit=plan.limit_unit(kind))
                fx.clock_starts.append((UUID(dispatch_id), kind, UUID(state.case_id), a.unit.id, a.unit.kind.value,
                                        state.division_code, started_at, due,
                                        clock.next_change(self.catalogue.yellow_share), traceparent,
                                        clock.limit_unit.value))

    def explanation(self, t: domain.Triage | None) -> TriageExplanation | None:
        """The model's reading as the routed event carries it."""
        if t is None or t.model_version is None:
            return None
        return TriageExplanation(model_version=t.model_version, probability=t.probability,
                                 kind_probability=t.confidence, threshold=self.model.threshold if self.model else 0,
                                 features=list(t.features), candidates=_candidates(t.candidates))

    def to_manual(self, fx: Outcome, state: domain.RoutingState, reason: str, seed: str, traceparent: str | None,
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

    def replan(self, fx: Outcome, state: domain.RoutingState, seed: str, traceparent: str | None,
               reason: RoutingReason, lead: domain.Unit | None = None,
               category: domain.Category | None = None) -> None:
        """Dispatch again (after a return, transfer, rework, escalation or by an operator)."""
        if category is None and state.category == domain.UNCATALOGUED and lead is not None:
            category = domain.uncatalogued(self.catalogue, lead, state.facts.get("category_text") or "")
        category = category or self.catalogue.get(state.category or "")
        if category is None:
            return self.to_manual(fx, state, f"category {state.category!r} no longer catalogued", seed, traceparent)
        now = self.now()
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

    def case_received(self, fx: Outcome, case: CaseReceived, cause: Cause) -> None:
        """Route a new case: dispatch it to its units, or put it in the manual queue. A case finished
        or refused at the window (直接办结 / 不予受理 by the clerk who took it) is only recorded."""
        cid = str(case.case_id)
        if cid in fx.states:
            return  # already routed
        if self.divisions.get(case.location.division_code) is None:
            raise EventRefused(f"unknown division {case.location.division_code}")
        facts = case_facts(case)
        try:
            decision = domain.route(facts, self.catalogue, self.units, self.model, fx.predictions.get(cause.event_id))
        except domain.UnknownCategory as exc:
            raise EventRefused(str(exc)) from None
        state = domain.RoutingState(
            cid, case.case_number, domain.CaseStatus.MANUAL, self.catalogue.version, self.now(),
            division_code=case.location.division_code,
            facts={"title": case.title, "description": case.description,
                   "location": case.location.model_dump(mode="json")},
            traceparent=cause.traceparent,
        )
        if case.disposition is not None:
            act = lifecycle.Act.CLOSE_DIRECTLY if case.disposition.act == "close" else lifecycle.Act.REFUSE
            self.dispose(fx, state, act, case.disposition.code, case.disposition.note, cause.traceparent,
                         actor=cause.actor)
            return
        if isinstance(decision, domain.ManualQueue):
            self.remember_reading(state, decision, None)
            return self.to_manual(fx, state, decision.reason, cause.event_id, cause.traceparent,
                                  decision.candidates, decision.model_version)
        decision = grid_units.grid_first(decision, case.location.grid_id, self.grids, self.units)  # 小事不出格
        if decision.triage is None:
            chosen_by = "channel"
        else:
            chosen_by = "safety" if decision.category.code != triage_reading(decision.triage.prediction) else "model"
        self.remember_reading(state, decision, chosen_by)
        self.dispatch_plan(fx, state, decision, cause.event_id, cause.traceparent, case.received_at)

    def duplicate_reported(self, fx: Outcome, report: CaseDuplicateReported, cause: Cause) -> None:
        """A repeat report (重复件): counted; repeats raise the risk of the next dispatch."""
        state = fx.states.get(cause.subject)
        if state is not None:
            state.repeats += 1
            if state.repeats >= self.catalogue.risk.repeats_to_raise and state.risk != "red":
                colours = domain.COLOUR_ORDER
                state.risk = colours[min(colours.index(state.risk) + 1, len(colours) - 1)]
            fx.touch(state)

    def dispatch_accepted(self, fx: Outcome, fb: DispatchAccepted, cause: Cause) -> None:
        """签收: the acknowledge clock stops."""
        state, d = self._feedback(fx, fb.dispatch_id, fb.unit_id, cause)
        if state.accept(d.dispatch_id, d.unit_id):
            fx.clock_stops.append((d.dispatch_id, "acknowledge"))
            fx.touch(state)

    def dispatch_progress(self, fx: Outcome, fb: DispatchProgress, cause: Cause) -> None:
        """进展: checked and remembered (办理中); the event itself is the record."""
        state, d = self._feedback(fx, fb.dispatch_id, fb.unit_id, cause)
        if d.open and not d.progressed:
            d.progressed = True
            fx.touch(state)

    def dispatch_resolved(self, fx: Outcome, fb: DispatchResolved, cause: Cause) -> None:
        """办结: the dispatch's clocks stop; the lead's resolution awaits the citizen's callback (回访),
        or first an operator's review (办结审核) when its matter asks for one."""
        state, d = self._feedback(fx, fb.dispatch_id, fb.unit_id, cause)
        cat = self.catalogue.get(state.category or "")
        if state.resolve(d.dispatch_id, d.unit_id, review=bool(cat and cat.resolution_review)):
            fx.clock_stops.append((d.dispatch_id, None))
            fx.touch(state)

    def dispatch_returned(self, fx: Outcome, fb: DispatchReturned, cause: Cause) -> None:
        """退单: dispatch again without that unit; after too many returns, the manual queue. For a matter
        whose returns are reviewed (退单审核) the return waits for an operator first."""
        state, d = self._feedback(fx, fb.dispatch_id, fb.unit_id, cause)
        if self._hold_for_review(fx, state, d, "return", fb.reason, cause):
            return
        self._carry_out_return(fx, state, d, fb.reason, cause.event_id, cause.traceparent)

    def _carry_out_return(self, fx: Outcome, state: domain.RoutingState, d: domain.DispatchRecord, reason: str,
                          seed: str, traceparent: str | None) -> None:
        if state.end_dispatch(d.dispatch_id, d.unit_id) is None:
            return  # a late return of an ended dispatch
        fx.clock_stops.append((d.dispatch_id, None))
        fx.touch(state)
        if d.role != "lead":
            return
        self.correction(fx, state, "return", seed, traceparent, by=d.unit_id, reason=reason)
        state.returns += 1
        state.excluded.append(d.unit_id)
        if state.returns > self.catalogue.max_returns:
            return self.to_manual(fx, state, f"returned {state.returns} times", seed, traceparent)
        self.replan(fx, state, seed, traceparent, RoutingReason.RETURN)

    def dispatch_transferred(self, fx: Outcome, fb: DispatchTransferred, cause: Cause) -> None:
        """转办: to the named unit (or the unit of the named kind) serving the case's division. For a
        matter whose transfers are reviewed (转办审核) the transfer waits for an operator first."""
        state, d = self._feedback(fx, fb.dispatch_id, fb.unit_id, cause)
        target = self._transfer_target(state, fb.target_unit_id, fb.target_kind)
        if (why := grid_units.grid_refusal(target, state.category, self.grids)) is not None:
            raise EventRefused(f"transfer refused: {why}")
        if self._hold_for_review(fx, state, d, "transfer", fb.reason, cause, target_unit_id=target.id,
                                 target_kind=fb.target_kind):
            return
        self._carry_out_transfer(fx, state, d, target, fb.reason, cause.event_id, cause.traceparent)

    def _transfer_target(self, state: domain.RoutingState, unit_id: str | None, kind) -> domain.Unit:
        if unit_id:
            target = self.units.get(unit_id)
            if target is None or not target.serves_division(state.division_code):
                raise EventRefused(f"transfer target {unit_id!r} does not serve division {state.division_code}")
            return target
        if kind:
            cat = self.catalogue.get(state.category or "")
            target = domain.find_unit(self.units, kind, cat.level if cat else domain.Level.TOWN, state.division_code)
            if target is None:
                raise EventRefused(f"no {kind.value} unit serves division {state.division_code}")
            return target
        raise EventRefused("a transfer names a target unit or unit kind")

    def _carry_out_transfer(self, fx: Outcome, state: domain.RoutingState, d: domain.DispatchRecord,
                            target: domain.Unit, reason: str, seed: str, traceparent: str | None) -> None:
        if state.end_dispatch(d.dispatch_id, d.unit_id) is None:
            return
        fx.clock_stops.append((d.dispatch_id, None))
        fx.touch(state)
        if d.role == "lead" and target.kind.value != d.unit_kind:
            self.correction(fx, state, "transfer", seed, traceparent, by=d.unit_id,
                            unit_kind=target.kind.value, reason=reason)
            state.facts["chosen_by"] = "department"
        if d.role == "lead":
            self.replan(fx, state, seed, traceparent, RoutingReason.TRANSFER, lead=target)

    def _hold_for_review(self, fx: Outcome, state: domain.RoutingState, d: domain.DispatchRecord, kind: str,
                         reason: str, cause: Cause, target_unit_id: str | None = None, target_kind=None) -> bool:
        """退单审核 / 转办审核: hold the lead's return or transfer for an operator when its matter asks
        for it (the unit keeps the case and its clocks meanwhile). Whether it was held."""
        cat = self.catalogue.get(state.category or "")
        wanted = cat is not None and (cat.return_review if kind == "return" else cat.transfer_review)
        if not wanted or d.role != "lead" or not d.open or d.held_return is not None \
                or not lifecycle.allowed(state.status, lifecycle.Act.RETURN_FOR_REVIEW):
            return False
        d.held_return = {"kind": kind, "reason": reason, "target_unit_id": target_unit_id,
                         "status": state.status.value}
        state.status = lifecycle.after(state.status, lifecycle.Act.RETURN_FOR_REVIEW)
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, ReturnHeldForReview(
            case_id=UUID(state.case_id), dispatch_id=UUID(d.dispatch_id), unit_id=d.unit_id, kind=kind,
            reason=reason, target_unit_id=target_unit_id, target_kind=target_kind),
            derive_id(SOURCE, cause.event_id, "held"), cause.traceparent)
        return True

    def review_return(self, fx: Outcome, state: domain.RoutingState | None, approved: bool, note: str | None,
                      operator: str, traceparent: str | None) -> domain.RoutingState:
        """退单审核 / 转办审核: approved, the held return or transfer is carried out; refused, the unit
        keeps the case as it stood (the unit hears either on its dispatch topic)."""
        state = self._acting_on(state, lifecycle.Act.APPROVE_RETURN if approved else lifecycle.Act.REJECT_RETURN)
        d = next(d for d in state.dispatches if d.held_return is not None)
        held, d.held_return = d.held_return, None
        seed = f"return-review:{d.dispatch_id}:{held['kind']}"
        reviewed = ReturnReviewed(case_id=UUID(state.case_id), dispatch_id=UUID(d.dispatch_id), unit_id=d.unit_id,
                                  kind=held["kind"], approved=approved, note=note,
                                  status_after=None if approved else held["status"])
        fx.emit(topics.ROUTER_DECISIONS, reviewed, derive_id(SOURCE, seed), traceparent)
        fx.emit(topics.dispatch_topic(d.unit_kind), reviewed, derive_id(SOURCE, seed, "unit"), traceparent)
        state.status = domain.CaseStatus(held["status"])
        fx.touch(state)
        if not approved:
            return state
        if held["kind"] == "return":
            self._carry_out_return(fx, state, d, held["reason"], seed, traceparent)
        else:
            target = self.units.get(held["target_unit_id"] or "")
            if target is None:
                self.to_manual(fx, state, f"transfer target {held['target_unit_id']!r} is gone", seed, traceparent)
            else:
                self._carry_out_transfer(fx, state, d, target, held["reason"], seed, traceparent)
        return state

    def _feedback(self, fx: Outcome, dispatch_id: UUID, unit_id: str, cause: Cause
                  ) -> tuple[domain.RoutingState, domain.DispatchRecord]:
        """The case and dispatch a unit's feedback is about; refused unless it fits (and came on the
        feedback topic of the dispatch's unit kind)."""
        state = fx.states.get(cause.subject)
        if state is None:
            raise EventRefused(f"no case {cause.subject} was dispatched")
        try:
            d = state.dispatch(str(dispatch_id), unit_id)
        except domain.FeedbackRefused as exc:
            raise EventRefused(str(exc)) from None
        if cause.topic != topics.feedback_topic(d.unit_kind):
            raise EventRefused(f"feedback on {cause.topic} for a dispatch to a {d.unit_kind} unit")
        return state, d

    # ------------------------------------------------------------ operator acts

    def _acting_on(self, state: domain.RoutingState | None, act: lifecycle.Act) -> domain.RoutingState:
        """The case an operator acts on, if the act is allowed now (404 / 409 otherwise)."""
        if state is None:
            raise ActionRefused(404, "Case not found", "the router has no such case")
        if not lifecycle.allowed(state.status, act):
            raise ActionRefused(409, "Not allowed now", str(lifecycle.TransitionRefused(state.status, act)))
        return state

    def record_callback(self, fx: Outcome, state: domain.RoutingState | None, outcome: CallbackOutcome,
                        note: str | None, traceparent: str | None) -> domain.RoutingState:
        """回访: 满意 or 基本满意 closes the case; 不满意 reopens it for rework (重办), the second time
        escalated; 未接通 is tried again later, and after the last allowed attempt the case closes as
        unreachable."""
        state = self._acting_on(state, lifecycle.Act.CALLBACK_SATISFIED)
        case_id = UUID(state.case_id)
        lead = next(d for d in reversed(state.dispatches) if d.role == "lead")
        attempt = int(state.facts.get("callback_attempts", 0)) + 1
        state.facts["callback_attempts"] = attempt
        seed = f"callback:{lead.dispatch_id}" + (f":attempt-{attempt}" if attempt > 1 else "")
        number = state.case_number
        satisfied = outcome in (CallbackOutcome.SATISFIED, CallbackOutcome.BASICALLY_SATISFIED)
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, CallbackRecorded(case_id=case_id, case_number=number, satisfied=satisfied,
                                                          note=note, outcome=outcome, attempt=attempt),
                derive_id(SOURCE, seed), traceparent)
        if outcome is CallbackOutcome.UNREACHABLE and attempt < self.catalogue.callback_attempts:
            return state
        if satisfied or outcome is CallbackOutcome.UNREACHABLE:
            state.close()
            state.facts["closed_at"] = self.now().isoformat()  # the citizen may ask to reopen for a while
            why = (f"resolved; no answer after {attempt} callback attempts" if not satisfied
                   else "resolved; the citizen is satisfied" if outcome is CallbackOutcome.SATISFIED
                   else "resolved; the citizen is basically satisfied")
            fx.emit(topics.ROUTER_DECISIONS, CaseClosed(case_id=case_id, case_number=number,
                                                        dispatch_id=UUID(lead.dispatch_id), unit_id=lead.unit_id,
                                                        reason=why, disposition=outcome.value),
                    derive_id(SOURCE, seed, "closed"), traceparent, self.now() + timedelta(microseconds=1))
            return state
        state.facts["callback_attempts"] = 0
        state.reopened += 1
        fx.emit(topics.ROUTER_DECISIONS, CaseReopened(case_id=case_id, case_number=number,
                                                      reason=note or "the citizen is not satisfied"),
                derive_id(SOURCE, seed, "reopened"), traceparent, self.now() + timedelta(microseconds=1))
        self.rework(fx, state, lead, seed, traceparent, "reopened after rework")
        return state

    def rework(self, fx: Outcome, state: domain.RoutingState, lead: domain.DispatchRecord, seed: str,
               traceparent: str | None, why_escalated: str) -> None:
        """重办: back to the same unit the first time; after that to the unit above (escalated)."""
        unit = self.units.get(lead.unit_id)
        if state.reopened <= 1 and unit is not None:
            self.replan(fx, state, seed, traceparent, RoutingReason.REWORK, lead=unit)
            return
        superior = domain.superior_of(self.units, unit, state.division_code) if unit else None
        if superior is None:
            self.to_manual(fx, state, "reopened again and no unit above", seed, traceparent)
            return
        fx.emit(topics.ROUTER_DECISIONS, CaseEscalated(
            case_id=UUID(state.case_id), dispatch_id=UUID(lead.dispatch_id), from_unit_id=lead.unit_id,
            to_unit_id=superior.id, to_level=superior.level, reason=why_escalated),
            derive_id(SOURCE, seed, "escalated"), traceparent)
        self.replan(fx, state, seed, traceparent, RoutingReason.ESCALATION, lead=superior)

    def review_resolution(self, fx: Outcome, state: domain.RoutingState | None, approved: bool, note: str | None,
                          operator: str, traceparent: str | None) -> domain.RoutingState:
        """办结审核: approved, the case goes on to the callback; rejected, back to the unit for rework."""
        act = lifecycle.Act.APPROVE_RESOLUTION if approved else lifecycle.Act.REJECT_RESOLUTION
        state = self._acting_on(state, act)
        lead = next(d for d in reversed(state.dispatches) if d.role == "lead")
        seed = f"review:{lead.dispatch_id}:{operator}:{state.reopened}"
        reviewed = ResolutionReviewed(case_id=UUID(state.case_id), dispatch_id=UUID(lead.dispatch_id),
                                      unit_id=lead.unit_id, approved=approved, note=note)
        fx.emit(topics.ROUTER_DECISIONS, reviewed, derive_id(SOURCE, seed), traceparent)
        fx.emit(topics.dispatch_topic(lead.unit_kind), reviewed, derive_id(SOURCE, seed, "unit"), traceparent)
        fx.touch(state)
        if approved:
            state.status = lifecycle.after(state.status, act)
            return state
        state.reopened += 1
        self.rework(fx, state, lead, seed, traceparent, "resolution rejected again at review")
        return state

    def dispose(self, fx: Outcome, state: domain.RoutingState | None, act: lifecycle.Act, code: DispositionCode,
                note: str, traceparent: str | None, actor: Actor | None = None) -> domain.RoutingState:
        """直接办结 (Act.CLOSE_DIRECTLY) or 不予受理 (Act.REFUSE): an operator ends a case from the manual
        queue without dispatching it, with a reason code and what the citizen is told."""
        event, name = _DISPOSALS[act]
        state = self._acting_on(state, act)
        state.close(lifecycle.after(state.status, act))
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, event(case_id=UUID(state.case_id), case_number=state.case_number,
                                               code=code, note=note),
                derive_id(SOURCE, state.case_id, name), traceparent, actor=actor)
        return state

    def merge(self, fx: Outcome, state: domain.RoutingState | None, into: domain.RoutingState | None,
              note: str | None, traceparent: str | None) -> domain.RoutingState:
        """并单: the case ends as merged and follows the other (open) case; its trace stays its own."""
        state = self._acting_on(state, lifecycle.Act.MERGE)
        if into is None or into.case_id == state.case_id:
            raise ActionRefused(422, "No case to merge into", "name another case of the router")
        if into.status in lifecycle.TERMINAL:
            raise ActionRefused(409, "Not allowed now", f"the case to merge into is {into.status.value}")
        for d in state.dispatches:
            if d.open:
                fx.clock_stops.append((d.dispatch_id, None))
        state.close(lifecycle.after(state.status, lifecycle.Act.MERGE))
        state.facts["merged_into"] = into.case_id
        into.repeats += 1
        fx.touch(state)
        fx.touch(into)
        fx.emit(topics.ROUTER_DECISIONS, CaseMerged(case_id=UUID(state.case_id), case_number=state.case_number,
                                                    into_case_id=UUID(into.case_id),
                                                    into_case_number=into.case_number, note=note),
                derive_id(SOURCE, state.case_id, "merged"), traceparent)
        return state

    def _open_dispatch(self, state: domain.RoutingState | None, dispatch_id: str, act: lifecycle.Act
                       ) -> tuple[domain.RoutingState, domain.DispatchRecord]:
        state = self._acting_on(state, act)
        d = next((d for d in state.dispatches if d.dispatch_id == dispatch_id), None)
        if d is None or not d.open:
            raise ActionRefused(409, "Not allowed now", "the dispatch is not open")
        return state, d

    def urge(self, fx: Outcome, state: domain.RoutingState | None, dispatch_id: str, note: str,
             seed: str, traceparent: str | None) -> domain.RoutingState:
        """催办: remind the holding unit (on its dispatch topic), with a note."""
        state, d = self._open_dispatch(state, dispatch_id, lifecycle.Act.URGE)
        urged = DispatchUrged(case_id=UUID(state.case_id), dispatch_id=UUID(d.dispatch_id), unit_id=d.unit_id,
                              note=note)
        fx.emit(topics.ROUTER_DECISIONS, urged, derive_id(SOURCE, seed), traceparent)
        fx.emit(topics.dispatch_topic(d.unit_kind), urged, derive_id(SOURCE, seed, "unit"), traceparent)
        return state

    def supervise_by_hand(self, fx: Outcome, state: domain.RoutingState | None, dispatch_id: str,
                          colour: domain.ClockColour, note: str, clocks: list[domain.Clock], seed: str,
                          traceparent: str | None) -> domain.RoutingState:
        """A 督办单 issued by hand (white, yellow or red) to the holding unit; a red one goes to the
        unit above as well."""
        state, d = self._open_dispatch(state, dispatch_id, lifecycle.Act.SUPERVISE)
        clock = min(clocks, key=lambda c: c.due_at) if clocks else None
        notice = SupervisionNotice(case_id=UUID(state.case_id), dispatch_id=UUID(d.dispatch_id), unit_id=d.unit_id,
                                   clock=clock.kind if clock else "resolve", colour=colour.value,
                                   due_at=clock.due_at if clock else self.now(), issued_by_hand=True, note=note)
        fx.emit(topics.ROUTER_DECISIONS, notice, derive_id(SOURCE, seed), traceparent)
        fx.emit(topics.dispatch_topic(d.unit_kind), notice, derive_id(SOURCE, seed, "unit"), traceparent)
        unit = self.units.get(d.unit_id)
        superior = domain.superior_of(self.units, unit, state.division_code) if unit else None
        if colour is domain.ClockColour.RED and superior is not None:
            fx.emit(topics.dispatch_topic(superior.kind), notice, derive_id(SOURCE, seed, "superior"), traceparent)
        return state

    def pause_or_resume(self, fx: Outcome, state: domain.RoutingState | None, dispatch_id: str,
                        clocks: list[domain.Clock], pause: bool, reason: str, now: datetime, seed: str,
                        traceparent: str | None) -> list[domain.ClockChange]:
        """Pause (with a reason) or resume the running clocks of a dispatch; a resumed due time moves on.
        Either is an event on the case's trace."""
        state, d = self._open_dispatch(state, dispatch_id, lifecycle.Act.PAUSE if pause else lifecycle.Act.RESUME)
        if not clocks:
            raise ActionRefused(404, "No running clock", "the dispatch has no running clock")
        if pause == all(c.paused_at is not None for c in clocks):
            raise ActionRefused(409, "Not allowed now", "the clocks are already " + ("paused" if pause else "running"))
        share = self.catalogue.yellow_share
        changes = []
        for clock in clocks:
            clock = clock.pause(now) if pause else clock.resume(now)
            changes.append(domain.ClockChange(clock, clock.next_change(share), reason if pause else None))
        case_id, did = UUID(state.case_id), UUID(d.dispatch_id)
        event = (ClockPaused(case_id=case_id, dispatch_id=did, unit_id=d.unit_id, clocks=[c.kind for c in clocks],
                             reason=reason) if pause else
                 ClockResumed(case_id=case_id, dispatch_id=did, unit_id=d.unit_id,
                              due={c.clock.kind: c.clock.due_at for c in changes}))
        fx.emit(topics.ROUTER_DECISIONS, event, derive_id(SOURCE, seed), traceparent, now)
        return changes

    def extension_requested(self, fx: Outcome, req: ExtensionRequested, cause: Cause) -> None:
        """延期申请 from the unit: kept on the dispatch until an operator decides."""
        state, d = self._feedback(fx, req.dispatch_id, req.unit_id, cause)
        if not d.open:
            raise EventRefused("an extension is asked for an open dispatch only")
        if not lifecycle.allowed(state.status, lifecycle.Act.REQUEST_EXTENSION):
            raise EventRefused(f"no extension while the case is {state.status.value}")
        d.extension_due, d.extension_reason = req.requested_due_at.isoformat(), req.reason
        d.progressed = True  # asking for time is being at work on it (办理中)
        fx.touch(state)

    def decide_extension(self, fx: Outcome, state: domain.RoutingState | None, dispatch_id: str, approved: bool,
                         due_at: datetime | None, note: str | None, clocks: list[domain.Clock],
                         traceparent: str | None) -> list[domain.ClockChange]:
        """An operator approves (the resolve clock moves to the asked or a given time) or refuses a
        unit's extension request; the unit hears it on its dispatch topic."""
        state, d = self._open_dispatch(state, dispatch_id, lifecycle.Act.DECIDE_EXTENSION)
        if d.extension_due is None:
            raise ActionRefused(409, "Not allowed now", "the unit has not asked for an extension")
        seed = f"extension:{d.dispatch_id}:{d.extension_due}"  # one decision per request
        changes: list[domain.ClockChange] = []
        new_due = None
        if approved:
            new_due = due_at or datetime.fromisoformat(d.extension_due)
            resolve = next((c for c in clocks if c.kind == "resolve"), None)
            if resolve is None:
                raise ActionRefused(409, "Not allowed now", "the dispatch has no running resolve clock")
            if resolve.paused_at is not None:
                raise ActionRefused(409, "Not allowed now", "the clocks are paused: resume them first")
            if new_due <= resolve.due_at:
                raise ActionRefused(422, "Not an extension", "the new due time must be later than the current one")
            moved = replace(resolve, due_at=new_due, colour=domain.ClockColour.WHITE)
            changes.append(domain.ClockChange(moved, moved.next_change(self.catalogue.yellow_share)))
        d.extension_due = d.extension_reason = None
        fx.touch(state)
        decided = ExtensionDecided(case_id=UUID(state.case_id), dispatch_id=UUID(d.dispatch_id), unit_id=d.unit_id,
                                   approved=approved, due_at=new_due, note=note)
        fx.emit(topics.ROUTER_DECISIONS, decided, derive_id(SOURCE, seed), traceparent)
        fx.emit(topics.dispatch_topic(d.unit_kind), decided, derive_id(SOURCE, seed, "unit"), traceparent)
        return changes

    def manual_dispatch(self, fx: Outcome, state: domain.RoutingState | None, category: str | None,
                        unit_id: str | None, operator: str, traceparent: str | None,
                        category_text: str | None = None) -> domain.RoutingState:
        """An operator dispatches a case from the manual queue, or reassigns an open one (also from the
        command centre's overdue queue). When no catalogue item fits, a named unit and a free-text
        category (`category_text`) dispatch it anyway; the correction goes to the model's review pile."""
        state = self._acting_on(state, lifecycle.Act.DISPATCH)
        cat, unit = self._category_for(state, category, category_text, unit_id)
        for d in state.dispatches:
            if d.open:
                fx.clock_stops.append((d.dispatch_id, None))
        seed = f"manual:{state.case_id}:{len(state.dispatches)}:{operator}"
        known = None if cat.code == domain.UNCATALOGUED else cat.code
        if known is None:
            state.facts["category_text"] = category_text
        why = f"{domain.UNCATALOGUED}: {category_text}" if known is None else None
        if state.status is domain.CaseStatus.MANUAL:
            self.correction(fx, state, "manual_dispatch", seed, traceparent, by=operator, category=known,
                            unit_kind=cat.unit_kind.value, reason=why)
        elif state.category != cat.code or known is None:
            self.correction(fx, state, "reassignment", seed, traceparent, by=operator, category=known,
                            unit_kind=cat.unit_kind.value, reason=why)
        state.facts["chosen_by"] = "operator"
        self.replan(fx, state, seed, traceparent, RoutingReason.MANUAL, lead=unit, category=cat)
        return state

    def split(self, fx: Outcome, state: domain.RoutingState | None, parts: list[SplitRequest], note: str | None,
              operator: str, traceparent: str | None) -> list[domain.RoutingState]:
        """拆单: an operator splits one report from the manual queue into cases for different units.
        Each part becomes a case of its own, numbered after the report (<number>-1, -2, ...), with its
        category (or a free-text one and a unit) and its own share of the text, and is routed as an
        operator's dispatch; the report ends as split. Returns the new cases."""
        state = self._acting_on(state, lifecycle.Act.SPLIT)
        if not 2 <= len(parts) <= 9:
            raise ActionRefused(422, "Split into 2 to 9 cases", f"{len(parts)} parts given")
        children = []
        for n, part in enumerate(parts, start=1):
            child_id = str(UUID(derive_id(SOURCE, state.case_id, "split", n)))
            facts = {**state.facts, "description": part.summary, "split_from": state.case_id}
            facts.pop("proposed", None)
            child = domain.RoutingState(child_id, f"{state.case_number}-{n}", domain.CaseStatus.MANUAL,
                                        self.catalogue.version, self.now(), division_code=state.division_code,
                                        risk=state.risk, facts=facts, traceparent=traceparent)
            children.append((child, part))
        planned = [(child, part, self._category_for(child, part.category, part.category_text, part.unit_id))
                   for child, part in children]  # every part checked before anything is emitted
        state.close(lifecycle.after(state.status, lifecycle.Act.SPLIT))
        state.facts["split_into"] = [c.case_id for c, _, _ in planned]
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, CaseSplit(
            case_id=UUID(state.case_id), case_number=state.case_number, note=note,
            parts=[SplitPart(case_id=UUID(c.case_id), case_number=c.case_number, category=cat.code,
                             unit_id=unit.id if unit else None, summary=p.summary) for c, p, (cat, unit) in planned]),
            derive_id(SOURCE, state.case_id, "split"), traceparent)
        for child, part, (cat, unit) in planned:
            child.facts["chosen_by"] = "operator"
            if cat.code == domain.UNCATALOGUED:
                child.facts["category_text"] = part.category_text
            fx.touch(child)
            self.replan(fx, child, f"split:{child.case_id}", traceparent, RoutingReason.MANUAL, lead=unit, category=cat)
        return [c for c, _, _ in planned]

    def _category_for(self, state: domain.RoutingState, category: str | None, category_text: str | None,
                      unit_id: str | None) -> tuple[domain.Category, domain.Unit | None]:
        """The category and unit an operator names (422 when the unit cannot take the case or the
        category is unknown; a free-text category needs a unit)."""
        unit = None
        if unit_id:
            unit = self.units.get(unit_id)
            if unit is None or not unit.serves_division(state.division_code):
                raise ActionRefused(422, "Unit cannot take the case", f"{unit_id!r} does not serve {state.division_code}")
        if category is None:
            if not (category_text and unit):
                raise ActionRefused(422, "Category required",
                                    "name a catalogue category, or a unit and a free-text category")
            grid_units.check_grid_dispatch(unit, None, self.grids)
            return domain.uncatalogued(self.catalogue, unit, category_text), unit
        cat = self.catalogue.get(category)
        if cat is None:
            raise ActionRefused(422, "Unknown category", f"{category!r} is not in catalogue {self.catalogue.version}")
        grid_units.check_grid_dispatch(unit, cat.code, self.grids)
        return cat, unit

    def citizen_rated(self, fx: Outcome, rating: CaseRated, cause: Cause) -> None:
        """评价 through intake: kept with the case (the event itself is the record in audit)."""
        state = fx.states.get(cause.subject)
        if state is not None:
            state.facts["citizen_rating"] = rating.rating.value
            fx.touch(state)

    def reopen_requested(self, fx: Outcome, req: ReopenRequested, cause: Cause) -> None:
        """申请重办 through intake: a resolved case waiting for its callback, or one closed after handling
        within the reopening window, goes back for rework (the second time escalated); otherwise the
        request stays on the record only (intake checked the same window before accepting it)."""
        state = fx.states.get(cause.subject)
        if state is None or not lifecycle.allowed(state.status, lifecycle.Act.REOPEN):
            return
        closed_at = state.facts.get("closed_at")
        if state.status is domain.CaseStatus.CLOSED and (
                closed_at is None or self.now() - datetime.fromisoformat(closed_at)
                > timedelta(days=self.catalogue.reopen_window_days)):
            return
        lead = next((d for d in reversed(state.dispatches) if d.role == "lead"), None)
        if lead is None:
            return
        state.reopened += 1
        state.status = lifecycle.after(state.status, lifecycle.Act.REOPEN)
        state.facts["callback_attempts"] = 0
        fx.touch(state)
        fx.emit(topics.ROUTER_DECISIONS, CaseReopened(case_id=UUID(state.case_id), case_number=state.case_number,
                                                      reason=f"the citizen asked: {req.reason}"),
                derive_id(SOURCE, cause.event_id, "reopened"), cause.traceparent)
        self.rework(fx, state, lead, cause.event_id, cause.traceparent, "reopened again at the citizen's request")

    # ------------------------------------------------------------ supervision

    def supervise(self, fx: Outcome, due: list[domain.RunningClock], now: datetime) -> list[domain.ClockChange]:
        """督办: turn due clocks yellow or red, notify the unit (its dispatch topic) and audit, and at red
        escalate to the level above. Notice ids derive from (dispatch, clock, colour): a tick repeated
        after a crash sends nothing twice."""
        share = self.catalogue.yellow_share
        changes = []
        for r in due:
            clock = r.clock
            colour = clock.colour_at(now, share)
            changed = domain.Clock(clock.dispatch_id, clock.kind, clock.started_at, clock.due_at, colour,
                                   limit_unit=clock.limit_unit)
            changes.append(domain.ClockChange(changed, changed.next_change(share)))
            if colour is clock.colour:
                continue
            notice = SupervisionNotice(case_id=r.case_id, dispatch_id=UUID(clock.dispatch_id), unit_id=r.unit_id,
                                       clock=clock.kind, colour=colour.value, due_at=clock.due_at)
            seed = (SOURCE, clock.dispatch_id, clock.kind, colour.value)
            tp = r.traceparent
            fx.emit(topics.ROUTER_DECISIONS, notice, derive_id(*seed), tp)
            fx.emit(topics.dispatch_topic(r.unit_kind), notice, derive_id(*seed, "unit"), tp)
            unit = self.units.get(r.unit_id)
            superior = domain.superior_of(self.units, unit, r.division_code) if unit else None
            if colour is domain.ClockColour.RED and superior is not None:
                fx.emit(topics.ROUTER_DECISIONS, CaseEscalated(
                    case_id=r.case_id, dispatch_id=UUID(clock.dispatch_id), from_unit_id=r.unit_id,
                    to_unit_id=superior.id, to_level=superior.level, reason=f"{clock.kind} deadline passed"),
                    derive_id(*seed, "escalated"), tp)
                fx.emit(topics.dispatch_topic(superior.kind), notice, derive_id(*seed, "superior"), tp)
        return changes


# the acts that end a case at the window, their events and the names their ids derive from
_DISPOSALS = {lifecycle.Act.CLOSE_DIRECTLY: (CaseClosedDirectly, "closed-directly"),
              lifecycle.Act.REFUSE: (CaseRefused, "refused")}


def case_facts(case: CaseReceived) -> domain.CaseFacts:
    """What routing reads of a received case (the live router and the what-if replay alike)."""
    return domain.CaseFacts(f"{case.title} {case.description}", case.category, case.location.division_code,
                            case.risk_flags, case.received_at, channel=case.channel.value)


def triage_reading(p: Prediction) -> str:
    """The model's own reading of a case: its most probable kind's best item, or out of scope."""
    if p.kind == OTHER_KIND or p.kind not in p.best_by_kind:
        return OUT_OF_SCOPE
    return p.best_by_kind[p.kind].category


def _candidates(cands) -> list[TriageCandidate]:
    return [TriageCandidate(category=c.category, unit_kind=c.unit_kind, probability=c.probability) for c in cands]
