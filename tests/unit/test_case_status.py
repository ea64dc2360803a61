"""One status, three services: the same table of workflows drives the routing desk (pure, no broker)
and its events feed intake's and audit's projections; all three must say the same status.

Each row is a workflow as it happens (the router's acts and the units' feedback); the router's
state is mapped with `domain.shared_status`, and the events it emitted (plus the feedback) are
folded by intake (`standings_after`) and audit (`fold`) — both with the shared rule."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.audit import domain as audit
from services.intake import domain as intake
from services.router import domain, workflow
from services.router.lifecycle import Act
from shared.contracts.events import (
    CallbackOutcome,
    CaseRated,
    CitizenRating,
    DispatchAccepted,
    DispatchProgress,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    DispositionCode,
    ExtensionRequested,
    ReopenRequested,
)
from shared.contracts.status import CaseStatus, Standing, project_all
from shared.divisions import load_divisions
from shared.refusals import ActionRefused
from tests.unit.test_router_domain import CATALOGUE, FIGHT, T0, UNITS, _received

S = CaseStatus
FIGHT_CODE = "public_security.violence.fight"


class Stream:
    """The desk's effects, keeping every event's data in order (as a reader of the topics sees them)."""

    def __init__(self):
        self.states, self.changed, self.clock_starts, self.clock_stops, self.predictions = {}, {}, [], [], {}
        self.events: list[tuple[str, str, dict]] = []  # (case id, type, data)

    def touch(self, state):
        self.states[state.case_id] = self.changed[state.case_id] = state

    def emit(self, topic, data, event_id, traceparent, time=None, actor=None):
        self.events.append((data.subject(), data.EVENT_TYPE, data.model_dump(mode="json")))


def _catalogue(**flags) -> domain.Catalogue:
    return domain.Catalogue.model_validate({**CATALOGUE.model_dump(), "category": [
        {**c.model_dump(), **(flags if c.code == FIGHT_CODE else {})} for c in CATALOGUE.category]})


class Flow:
    """A case on a desk, with helpers for the units' feedback (recorded as the events they are)."""

    def __init__(self, catalogue=CATALOGUE, now=T0):
        self.clock = [now]
        self.desk = workflow.RoutingDesk(catalogue, UNITS, load_divisions(), FIGHT, now=lambda: self.clock[0])
        self.fx = Stream()
        case = _received("小区门口有人打架", category=FIGHT_CODE)
        self.case_id = str(case.case_id)
        self.fx.events.append((self.case_id, case.EVENT_TYPE, case.model_dump(mode="json")))
        self.desk.case_received(self.fx, case, workflow.Cause(f"ev-{case.case_id}", self.case_id, "intake.cases", None))

    @property
    def state(self) -> domain.RoutingState:
        return self.fx.states[self.case_id]

    def feedback(self, model, handler, **kw):
        lead = self.state.lead
        fb = model(case_id=uuid.UUID(self.case_id), dispatch_id=uuid.UUID(lead.dispatch_id), unit_id=lead.unit_id, **kw)
        self.fx.events.append((self.case_id, fb.EVENT_TYPE, fb.model_dump(mode="json")))
        handler(self.fx, fb, workflow.Cause(f"ev-{uuid.uuid4()}", self.case_id, f"feedback.{lead.unit_kind}", None))

    def citizen(self, model, handler, **kw):
        ev = model(case_id=uuid.UUID(self.case_id), case_number=self.state.case_number, **kw)
        self.fx.events.append((self.case_id, ev.EVENT_TYPE, ev.model_dump(mode="json")))
        handler(self.fx, ev, workflow.Cause(f"ev-{uuid.uuid4()}", self.case_id, "intake.cases", None))

    def accept(self):
        self.feedback(DispatchAccepted, self.desk.dispatch_accepted)

    def progress(self):
        self.feedback(DispatchProgress, self.desk.dispatch_progress, note="已到现场")

    def resolve(self):
        self.feedback(DispatchResolved, self.desk.dispatch_resolved, summary="已处置")

    def ret(self):
        self.feedback(DispatchReturned, self.desk.dispatch_returned, reason="非本单位职责")

    def transfer(self):
        self.feedback(DispatchTransferred, self.desk.dispatch_transferred, reason="属信访事项",
                      target_kind="petition")

    def ask_time(self):
        self.feedback(ExtensionRequested, self.desk.extension_requested, reason="需协调多部门",
                      requested_due_at=T0 + timedelta(days=20))

    def decide_time(self, approved=True):
        lead = self.state.lead
        clock = domain.Clock(lead.dispatch_id, "resolve", T0, T0 + timedelta(days=5))
        self.desk.decide_extension(self.fx, self.state, lead.dispatch_id, approved, None, "同意", [clock], None)

    def callback(self, outcome):
        self.desk.record_callback(self.fx, self.state, outcome, None, None)


def _manual(flow: Flow) -> None:
    flow.state.to_manual()
    flow.fx.events.append((flow.case_id, "org.onewindow.case.manual_triage_required.v1", {"case_number": "n"}))


# (name, steps, status every service must tell)
TABLE = [
    ("dispatched", [], S.DISPATCHED),
    ("accepted", [Flow.accept], S.ACCEPTED),
    ("in progress", [Flow.accept, Flow.progress], S.IN_PROGRESS),
    ("extension asked", [Flow.accept, Flow.ask_time], S.EXTENSION_REQUESTED),
    ("extension decided", [Flow.accept, Flow.ask_time, Flow.decide_time], S.IN_PROGRESS),
    ("resolved", [Flow.accept, Flow.resolve], S.RESOLVED),
    ("closed after callback", [Flow.accept, Flow.resolve, lambda f: f.callback(CallbackOutcome.SATISFIED)], S.CLOSED),
    ("unreachable once", [Flow.resolve, lambda f: f.callback(CallbackOutcome.UNREACHABLE)], S.RESOLVED),
    ("reopened by the callback, dispatched again",
     [Flow.accept, Flow.resolve, lambda f: f.callback(CallbackOutcome.UNSATISFIED)], S.DISPATCHED),
    ("rework accepted", [Flow.accept, Flow.resolve, lambda f: f.callback(CallbackOutcome.UNSATISFIED), Flow.accept],
     S.ACCEPTED),
    ("returned and dispatched again", [Flow.ret], S.DISPATCHED),
    ("transferred", [Flow.accept, Flow.transfer], S.DISPATCHED),
    ("manual queue", [_manual], S.MANUAL_TRIAGE),
    ("closed at the window", [_manual, lambda f: f.desk.dispose(f.fx, f.state, Act.CLOSE_DIRECTLY,
                                                                DispositionCode.ANSWERED, "已答复", None)], S.CLOSED),
    ("refused", [_manual, lambda f: f.desk.dispose(f.fx, f.state, Act.REFUSE, DispositionCode.IN_LITIGATION,
                                                   "已诉讼", None)], S.REFUSED),
    ("split", [_manual, lambda f: f.desk.split(f.fx, f.state, [
        workflow.SplitRequest("打架部分", category=FIGHT_CODE),
        workflow.SplitRequest("噪音部分", category="litigation.civil_suit.private_loan")], None, "op-1", None)], S.SPLIT),
    ("rated after closure, still closed",
     [Flow.resolve, lambda f: f.callback(CallbackOutcome.SATISFIED),
      lambda f: f.citizen(CaseRated, f.desk.citizen_rated, rating=CitizenRating.UNSATISFIED)], S.CLOSED),
    ("reopened at the citizen's request",
     [Flow.resolve, lambda f: f.callback(CallbackOutcome.SATISFIED),
      lambda f: f.citizen(ReopenRequested, f.desk.reopen_requested, reason="问题依旧")], S.DISPATCHED),
]

REVIEWED = [
    ("return held", [Flow.accept, Flow.ret], S.RETURN_REVIEW),
    ("return refused: the unit keeps it", [Flow.accept, Flow.ret,
                                           lambda f: f.desk.review_return(f.fx, f.state, False, "属本单位", "op", None)],
     S.ACCEPTED),
    ("return refused before signing", [Flow.ret, lambda f: f.desk.review_return(f.fx, f.state, False, "x", "op", None)],
     S.DISPATCHED),
    ("return approved", [Flow.accept, Flow.ret, lambda f: f.desk.review_return(f.fx, f.state, True, None, "op", None)],
     S.DISPATCHED),
    ("transfer held", [Flow.accept, Flow.transfer], S.RETURN_REVIEW),
    ("transfer approved", [Flow.transfer, lambda f: f.desk.review_return(f.fx, f.state, True, None, "op", None)],
     S.DISPATCHED),
]


def _run(steps, catalogue=CATALOGUE) -> Flow:
    flow = Flow(catalogue)
    for step in steps:
        step(flow)
    return flow


def _statuses(flow: Flow) -> dict[str, CaseStatus]:
    mine = [(t, d) for c, t, d in flow.fx.events if c == flow.case_id]
    at = T0
    shared = project_all([(t, d, at) for t, d in mine]).status
    summary = audit.CaseSummary(flow.case_id)
    for t, d in mine:
        audit.fold(summary, t, d, at)
    known = {flow.case_id: Standing()}
    moved = intake.standings_after(known, [(t, flow.case_id, d, at) for t, d in mine])
    return {"router": domain.shared_status(flow.state), "shared": shared, "audit": CaseStatus(summary.status),
            "intake": moved.get(flow.case_id, known[flow.case_id]).status}


@pytest.mark.parametrize("name,steps,expected", TABLE, ids=[r[0] for r in TABLE])
def test_router_intake_and_audit_tell_the_same_status(name, steps, expected):
    assert _statuses(_run(steps)) == dict.fromkeys(("router", "shared", "audit", "intake"), expected)


@pytest.mark.parametrize("name,steps,expected", REVIEWED, ids=[r[0] for r in REVIEWED])
def test_held_returns_and_transfers_are_told_the_same_everywhere(name, steps, expected):
    flow = _run(steps, _catalogue(return_review=True, transfer_review=True))
    assert _statuses(flow) == dict.fromkeys(("router", "shared", "audit", "intake"), expected)


def test_a_held_return_seen_before_the_units_return_still_waits_for_review():
    """Across topics the router's hold may reach a reader before the unit's return: the review decides."""
    flow = _run([Flow.accept, Flow.ret], _catalogue(return_review=True))
    events = [(t, d, T0) for c, t, d in flow.fx.events if c == flow.case_id]
    returned = next(e for e in events if e[0].endswith("dispatch.returned.v1"))
    reordered = [e for e in events if e is not returned] + [returned]
    assert project_all(reordered).status is S.RETURN_REVIEW


def test_feedback_of_an_ended_dispatch_does_not_move_the_case():
    flow = _run([Flow.ret])  # dispatched again to another unit
    first = next(d for c, t, d in flow.fx.events if t.endswith("case.routed.v1"))
    late = ("org.onewindow.dispatch.accepted.v1",
            {"dispatch_id": first["assignments"][0]["dispatch_id"], "unit_id": first["unit_id"]}, T0)
    events = [(t, d, T0) for c, t, d in flow.fx.events if c == flow.case_id]
    assert project_all(events + [late]).status is S.DISPATCHED


def test_split_parts_are_cases_of_their_own_routed_to_their_units():
    flow = _run([_manual])
    children = flow.desk.split(flow.fx, flow.state, [
        workflow.SplitRequest("打架部分", category=FIGHT_CODE),
        workflow.SplitRequest("路灯不亮", category_text="路灯维修", unit_id=flow.state.dispatches[0].unit_id)],
        "一单多事", "op-1", None)
    assert [c.case_number for c in children] == [f"{flow.state.case_number}-1", f"{flow.state.case_number}-2"]
    assert all(c.status is domain.CaseStatus.DISPATCHED and c.facts["split_from"] == flow.case_id for c in children)
    assert flow.state.facts["split_into"] == [c.case_id for c in children]
    with pytest.raises(ActionRefused) as refused:  # only from the manual queue
        flow.desk.split(flow.fx, children[0], [workflow.SplitRequest("a", category=FIGHT_CODE)] * 2, None, "op", None)
    assert refused.value.status == 409


def test_a_split_with_a_bad_part_changes_nothing():
    flow = _run([_manual])
    before = len(flow.fx.events)
    with pytest.raises(ActionRefused) as refused:
        flow.desk.split(flow.fx, flow.state, [workflow.SplitRequest("a", category=FIGHT_CODE),
                                              workflow.SplitRequest("b", category="no.such.item")], None, "op", None)
    assert refused.value.status == 422
    assert len(flow.fx.events) == before and flow.state.status is domain.CaseStatus.MANUAL


def test_a_citizen_cannot_reopen_after_the_window_or_a_case_closed_at_the_window():
    late = _run([Flow.resolve, lambda f: f.callback(CallbackOutcome.SATISFIED)])
    late.clock[0] = T0 + timedelta(days=CATALOGUE.reopen_window_days + 1)
    late.citizen(ReopenRequested, late.desk.reopen_requested, reason="问题依旧")
    assert late.state.status is domain.CaseStatus.CLOSED
    direct = _run([_manual, lambda f: f.desk.dispose(f.fx, f.state, Act.CLOSE_DIRECTLY, DispositionCode.ANSWERED,
                                                     "已答复", None)])
    direct.citizen(ReopenRequested, direct.desk.reopen_requested, reason="问题依旧")
    assert direct.state.status is domain.CaseStatus.CLOSED
