"""The case lifecycle without a broker or database: the table of acts, and each workflow act of the
routing desk, allowed and refused (直接办结, 不予受理, 办结审核, 并单, 回访 outcomes, 催办, 督办单,
pause and resume, 延期申请)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.router import domain, lifecycle, workflow
from services.router.lifecycle import Act
from shared.contracts.events import CallbackOutcome, DispatchResolved, DispositionCode, ExtensionRequested
from shared.divisions import load_divisions
from shared.refusals import ActionRefused
from tests.unit.test_router_domain import CATALOGUE, FIGHT, T0, UNITS, Recorded, _received

S = domain.CaseStatus


def _desk(catalogue=CATALOGUE) -> workflow.RoutingDesk:
    return workflow.RoutingDesk(catalogue, UNITS, load_divisions(), FIGHT, now=lambda: T0)


def _case(desk=None, category="public_security.violence.fight", fx=None):
    fx = fx or Recorded()
    case = _received("小区门口有人打架", category=category)
    (desk or _desk()).case_received(fx, case, workflow.Cause(f"ev-{case.case_id}", str(case.case_id), "intake.cases", None))
    return fx, fx.states[str(case.case_id)]


def _manual(fx=None):
    fx, state = _case(fx=fx)
    state.to_manual()
    return fx, state


def _resolve(desk, fx, state):
    lead = state.lead
    desk.dispatch_resolved(fx, DispatchResolved(case_id=uuid.UUID(state.case_id), dispatch_id=uuid.UUID(lead.dispatch_id),
                                                unit_id=lead.unit_id, summary="已处置"),
                           workflow.Cause(f"ev-res-{lead.dispatch_id}", state.case_id, f"feedback.{lead.unit_kind}", None))
    return lead


def _types(fx) -> list[str]:
    return [t.removeprefix("org.onewindow.") for _, t, _ in fx.events]


# -- the table

@pytest.mark.parametrize("status,act,after", [
    (S.MANUAL, Act.CLOSE_DIRECTLY, S.CLOSED), (S.MANUAL, Act.REFUSE, S.REFUSED), (S.MANUAL, Act.DISPATCH, S.DISPATCHED),
    (S.DISPATCHED, Act.ACCEPT, S.ACCEPTED), (S.ACCEPTED, Act.RESOLVE_FOR_REVIEW, S.RESOLUTION_REVIEW),
    (S.RESOLUTION_REVIEW, Act.APPROVE_RESOLUTION, S.AWAITING_CALLBACK),
    (S.RESOLUTION_REVIEW, Act.REJECT_RESOLUTION, S.DISPATCHED), (S.AWAITING_CALLBACK, Act.CALLBACK_SATISFIED, S.CLOSED),
    (S.AWAITING_CALLBACK, Act.CALLBACK_UNREACHABLE, S.AWAITING_CALLBACK), (S.ACCEPTED, Act.MERGE, S.MERGED),
    (S.ACCEPTED, Act.PAUSE, S.ACCEPTED),
])
def test_allowed_acts_lead_where_the_table_says(status, act, after):
    assert lifecycle.after(status, act) is after


@pytest.mark.parametrize("status,act", [
    (S.DISPATCHED, Act.CLOSE_DIRECTLY), (S.ACCEPTED, Act.REFUSE), (S.CLOSED, Act.DISPATCH),
    (S.AWAITING_CALLBACK, Act.APPROVE_RESOLUTION), (S.MANUAL, Act.CALLBACK_SATISFIED), (S.CLOSED, Act.MERGE),
    (S.MANUAL, Act.URGE), (S.AWAITING_CALLBACK, Act.PAUSE), (S.REFUSED, Act.DISPATCH), (S.MERGED, Act.REFUSE),
])
def test_refused_acts_say_when_they_would_be_allowed(status, act):
    with pytest.raises(lifecycle.TransitionRefused, match=f"{act.value} is not allowed while the case is {status.value}"):
        lifecycle.after(status, act)


def test_nothing_leaves_a_terminal_status_but_every_open_status_has_a_way_out():
    for status in lifecycle.TERMINAL:  # only the citizen may reopen, and only a closed case
        assert lifecycle.acts_in(status) == ([Act.REOPEN] if status is S.CLOSED else [])
    for status in (S.MANUAL, S.DISPATCHED, S.ACCEPTED, S.RESOLUTION_REVIEW, S.AWAITING_CALLBACK, S.RETURN_REVIEW):
        assert any(lifecycle.after(status, a) != status for a in lifecycle.acts_in(status))


# -- the acts

def test_close_directly_and_refuse_only_from_the_manual_queue():
    desk = _desk()
    fx, state = _manual()
    desk.dispose(fx, state, Act.CLOSE_DIRECTLY, DispositionCode.ANSWERED, "已电话答复路灯报修渠道", None)
    assert state.status is S.CLOSED and _types(fx)[-1] == "case.closed_directly.v1"
    fx, state = _manual()
    desk.dispose(fx, state, Act.REFUSE, DispositionCode.IN_LITIGATION, "已进入诉讼程序", None)
    assert state.status is S.REFUSED and _types(fx)[-1] == "case.refused.v1"
    fx, dispatched = _case()
    before = len(fx.events)
    for act in (Act.CLOSE_DIRECTLY, Act.REFUSE):
        with pytest.raises(ActionRefused) as refused:
            desk.dispose(fx, dispatched, act, DispositionCode.OTHER, "x", None)
        assert refused.value.status == 409
    assert len(fx.events) == before and dispatched.status is S.DISPATCHED


def test_a_matter_under_review_waits_for_the_operator_then_goes_to_callback_or_back_to_work():
    reviewed = domain.Catalogue.model_validate({**CATALOGUE.model_dump(), "category": [
        {**c.model_dump(), "resolution_review": c.code == "public_security.violence.fight"} for c in CATALOGUE.category]})
    desk = _desk(reviewed)
    fx, state = _case(desk)
    _resolve(desk, fx, state)
    assert state.status is S.RESOLUTION_REVIEW
    with pytest.raises(ActionRefused):
        desk.record_callback(fx, state, CallbackOutcome.SATISFIED, None, None)  # no callback before the review
    desk.review_resolution(fx, state, True, "处置到位", "op-1", None)
    assert state.status is S.AWAITING_CALLBACK and _types(fx)[-2:] == ["dispatch.resolution_reviewed.v1"] * 2
    fx, state = _case(desk)
    first = _resolve(desk, fx, state)
    desk.review_resolution(fx, state, False, "未附现场照片", "op-1", None)
    assert state.status is S.DISPATCHED and state.lead.unit_id == first.unit_id  # rework by the same unit
    assert state.lead.dispatch_id != first.dispatch_id


def test_callback_outcomes_and_unreachable_retries():
    desk = _desk()
    fx, state = _case()
    _resolve(desk, fx, state)
    desk.record_callback(fx, state, CallbackOutcome.BASICALLY_SATISFIED, None, None)
    assert state.status is S.CLOSED
    fx, state = _case()
    _resolve(desk, fx, state)
    for attempt in range(1, CATALOGUE.callback_attempts):
        desk.record_callback(fx, state, CallbackOutcome.UNREACHABLE, "无人接听", None)
        assert state.status is S.AWAITING_CALLBACK
    desk.record_callback(fx, state, CallbackOutcome.UNREACHABLE, "无人接听", None)
    assert state.status is S.CLOSED
    ids = [i for _, t, i in fx.events if t.endswith("callback_recorded.v1")]
    assert len(ids) == CATALOGUE.callback_attempts == len(set(ids))  # each attempt its own event


def test_merge_into_an_open_case_only():
    desk = _desk()
    fx, a = _case()
    _, b = _case(fx=fx)
    desk.merge(fx, a, b, "同一事项", None)
    assert a.status is S.MERGED and a.facts["merged_into"] == b.case_id and b.repeats == 1
    assert all(not d.open for d in a.dispatches)
    _, c = _case(fx=fx)
    for into, why in ((a, 409), (c, 409), (None, 422)):
        with pytest.raises(ActionRefused) as refused:
            desk.merge(fx, c if into is not c else a, into, None, None)
        assert refused.value.status in (409, 422)


def test_urge_supervise_and_pause_need_an_open_dispatch():
    desk = _desk()
    fx, state = _case()
    lead = state.lead
    clock = domain.Clock(lead.dispatch_id, "resolve", T0, T0 + timedelta(hours=24))
    desk.urge(fx, state, lead.dispatch_id, "请尽快处置", "s1", None)
    desk.supervise_by_hand(fx, state, lead.dispatch_id, domain.ClockColour.RED, "限期办结", [clock], "s2", None)
    assert _types(fx)[-5:] == ["dispatch.urged.v1"] * 2 + ["supervision.notice.v1"] * 3  # red: the unit above too
    changes = desk.pause_or_resume(fx, state, lead.dispatch_id, [clock], True, "当事人住院", T0 + timedelta(hours=1),
                                   "p1", None)
    with pytest.raises(ActionRefused, match="already paused"):
        desk.pause_or_resume(fx, state, lead.dispatch_id, [changes[0].clock], True, "again", T0, "p2", None)
    resumed = desk.pause_or_resume(fx, state, lead.dispatch_id, [changes[0].clock], False, "出院",
                                   T0 + timedelta(hours=3), "p3", None)
    assert resumed[0].clock.due_at == T0 + timedelta(hours=26)
    assert _types(fx)[-2:] == ["dispatch.clock_paused.v1", "dispatch.clock_resumed.v1"]
    with pytest.raises(ActionRefused):
        desk.urge(fx, state, str(uuid.uuid4()), "x", "s3", None)


def test_an_extension_is_asked_by_the_unit_and_moves_the_clock_only_when_approved():
    desk = _desk()
    fx, state = _case()
    lead = state.lead
    clock = domain.Clock(lead.dispatch_id, "resolve", T0, T0 + timedelta(hours=24))
    with pytest.raises(ActionRefused, match="has not asked"):
        desk.decide_extension(fx, state, lead.dispatch_id, True, None, None, [clock], None)
    ask = ExtensionRequested(case_id=uuid.UUID(state.case_id), dispatch_id=uuid.UUID(lead.dispatch_id),
                             unit_id=lead.unit_id, requested_due_at=T0 + timedelta(days=3), reason="需等待鉴定结果")
    desk.extension_requested(fx, ask, workflow.Cause("ev-ext", state.case_id, "feedback.police", None))
    changes = desk.decide_extension(fx, state, lead.dispatch_id, True, None, "同意", [clock], None)
    assert changes[0].clock.due_at == T0 + timedelta(days=3) and lead.extension_due is None
    desk.extension_requested(fx, ask.model_copy(update={"requested_due_at": T0 + timedelta(days=5)}),
                             workflow.Cause("ev-ext2", state.case_id, "feedback.police", None))
    assert desk.decide_extension(fx, state, lead.dispatch_id, False, None, "理由不充分", [changes[0].clock], None) == []
    with pytest.raises(workflow.EventRefused):  # another unit cannot ask for this dispatch
        desk.extension_requested(fx, ask.model_copy(update={"unit_id": "police-339902"}),
                                 workflow.Cause("ev-ext3", state.case_id, "feedback.police", None))


def test_an_operator_dispatches_a_matter_no_item_fits_with_free_text():
    desk = _desk()
    fx, state = _manual()
    with pytest.raises(ActionRefused, match="free-text"):
        desk.manual_dispatch(fx, state, None, None, "op-1", None, "路灯损坏")
    desk.manual_dispatch(fx, state, None, "police-339901001", "op-1", None, "路灯损坏")
    assert state.status is S.DISPATCHED and state.category == domain.UNCATALOGUED
    assert state.lead.unit_id == "police-339901001" and state.facts["category_text"] == "路灯损坏"
    assert "case.triage_corrected.v1" in _types(fx)
