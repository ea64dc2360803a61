"""The router's decisions without a broker or database: triage, risk, units, lifecycle, clocks, and
the routing desk's workflow rules (feedback, events and their ids)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.router import domain, workflow
from services.router.triage import Candidate, Prediction
from shared.contracts import CaseReceived, DispatchAccepted, Level, Location, RiskColour, RoutingReason
from shared.divisions import load_divisions
from shared.topics import UnitKind

CATALOGUE = domain.load_catalogue()
UNITS = domain.load_units()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FixedReading:
    """A stand-in for the triage model that reads every text the same way (pure-logic tests only;
    the trained model itself is tested in test_triage_model.py)."""

    version = "triage-fixed"

    def __init__(self, *probabilities: tuple[str, float], threshold: float = 0.6, evidence: int = 1):
        self.threshold = threshold
        kinds = CATALOGUE.kinds
        cands = tuple(Candidate(c, kinds[c], p) for c, p in probabilities)
        by_kind: dict[str, float] = {}
        best: dict[str, Candidate] = {}
        for c in cands:
            by_kind[c.unit_kind] = by_kind.get(c.unit_kind, 0) + c.probability
            best.setdefault(c.unit_kind, c)
        self.reading = Prediction(cands, by_kind, ("特征",), best, evidence)

    def predict(self, texts):
        return [self.reading for _ in texts]


def _facts(text: str, division: str = "339901001001", category: str | None = None, flags=(), repeats=0,
           channel: str = "window"):
    return domain.CaseFacts(text, category, division, list(flags), T0, repeats, channel)


def _route(*args, model=None, **kw) -> domain.Plan | domain.ManualQueue:
    return domain.route(_facts(*args, **kw), CATALOGUE, UNITS, model)


FIGHT = FixedReading(("public_security.violence.fight", 0.9), ("dispute.neighbourhood.noise", 0.1))
LEAK = FixedReading(("dispute.neighbourhood.water_leak", 0.8), ("public_security.violence.fight", 0.05),
                    ("dispute.property_management.service_quality", 0.15))
TRAFFIC = FixedReading(("dispute.traffic.compensation", 0.9), ("public_security.traffic_safety.hit_and_run", 0.1))


# -- triage

def test_given_category_from_a_trusted_channel_wins_over_the_model():
    plan = _route("有人打架", category="litigation.civil_suit.private_loan", model=FIGHT)
    assert plan.category.code == "litigation.civil_suit.private_loan" and plan.lead.kind is UnitKind.COURT
    assert plan.rule_ids[0] == "category:litigation.civil_suit.private_loan" and plan.triage is None


def test_a_citizens_own_category_is_only_a_hint():
    plan = _route("有人打架", category="litigation.civil_suit.private_loan", channel="citizen_app", model=FIGHT)
    assert plan.category.code == "public_security.violence.fight"
    assert "hint:litigation.civil_suit.private_loan" in plan.rule_ids


def test_unknown_category_is_refused():
    with pytest.raises(domain.UnknownCategory):
        _route("有人打架", category="no.such.thing", model=FIGHT)


def test_the_model_decides_and_the_decision_names_it():
    plan = _route("小区门口有人打架斗殴", model=FIGHT)
    assert plan.lead.id == "police-339901001" and plan.lead.level is Level.TOWN
    assert plan.rule_ids[0] == "model:triage-fixed:public_security.violence.fight"
    assert plan.triage.model_version == "triage-fixed" and plan.triage.features == ("特征",)
    assert plan.confidence == 0.9 and plan.rule_ids[-1] == "jurisdiction:town:police-339901001"


def test_the_threshold_applies_to_the_unit_kind_not_the_item():
    # two mediation items share 0.7: the kind is sure enough, the best item of that kind is chosen
    model = FixedReading(("dispute.neighbourhood.noise", 0.35), ("dispute.neighbourhood.pets", 0.35),
                         ("public_security.violence.fight", 0.3))
    plan = _route("楼上天天吵", model=model)
    assert plan.category.code == "dispute.neighbourhood.noise" and plan.confidence == 0.7


def test_low_confidence_goes_to_the_manual_queue_with_three_candidates():
    model = FixedReading(("public_security.violence.fight", 0.4), ("litigation.civil_suit.tort", 0.35),
                         ("dispute.neighbourhood.noise", 0.25))
    decision = _route("打架以后去法院起诉，想找邻居调解", model=model)
    assert isinstance(decision, domain.ManualQueue) and "below the threshold" in decision.reason
    assert [c.category for c in decision.candidates] == ["public_security.violence.fight",
                                                         "litigation.civil_suit.tort", "dispute.neighbourhood.noise"]
    assert decision.model_version == "triage-fixed"


def test_an_unsure_but_dangerous_report_goes_to_the_police_now():
    model = FixedReading(("dispute.neighbourhood.common_space", 0.5), ("public_security.violence.armed", 0.45),
                         ("litigation.civil_suit.tort", 0.05))
    plan = _route("楼道里有人持刀威胁邻居", model=model)
    assert plan.risk is RiskColour.RED and plan.category.code == "public_security.violence.armed"
    assert [(a.unit.kind, a.role) for a in plan.assignments] == [(UnitKind.POLICE, "lead"),
                                                                 (UnitKind.MEDIATION, "assist")]
    assert "risk:red:unsure_triage_to_police" in plan.rule_ids and plan.triage.candidates[0].probability == 0.5
    assert isinstance(_route("楼道里堆满了杂物", model=model), domain.ManualQueue)  # not dangerous: the queue


def test_a_report_outside_the_catalogue_goes_to_the_manual_queue_with_candidates():
    model = FixedReading(("petition.officials.inaction", 0.3), ("dispute.neighbourhood.common_space", 0.1))
    model.reading = Prediction(model.reading.candidates, {"other": 0.6, "petition": 0.3, "mediation": 0.1},
                               (), model.reading.best_by_kind)
    decision = _route("路口的路灯坏了好几天", model=model)
    assert isinstance(decision, domain.ManualQueue) and "outside the catalogue" in decision.reason
    assert decision.candidates[0].category == "petition.officials.inaction"


def test_a_dangerous_report_for_another_department_waits_for_a_person_flagged_red():
    model = FixedReading(("dispute.neighbourhood.odour_pollution", 0.3), ("public_security.violence.armed", 0.1))
    model.reading = Prediction(model.reading.candidates, {"other": 0.7, "mediation": 0.2, "police": 0.1},
                               (), model.reading.best_by_kind)
    decision = _route("小区燃气管道漏气，怕爆炸，请燃气公司来处理", model=model)
    assert isinstance(decision, domain.ManualQueue) and decision.reason.startswith("red (risk:red:爆炸)")


def test_the_police_lead_item_must_be_a_police_item():
    raw = CATALOGUE.model_dump()
    raw.pop("domain", None)
    raw["risk"]["police_lead_category"] = "dispute.neighbourhood.noise"
    with pytest.raises(ValidationError, match="not a police item"):
        domain.Catalogue.model_validate(raw)


def test_a_report_with_no_word_the_model_knows_waits_for_a_person_unless_it_is_dangerous():
    model = FixedReading(("dispute.neighbourhood.noise", 0.9), ("public_security.violence.fight", 0.1), evidence=0)
    decision = _route("嗯嗯嗯", model=model)
    assert isinstance(decision, domain.ManualQueue) and decision.reason == "triage: no words the model knows"
    assert decision.model_version == "triage-fixed" and decision.candidates == model.reading.candidates
    dangerous = _route("嗯嗯嗯", flags=["weapons"], model=model)
    assert dangerous.lead.kind is UnitKind.POLICE and "risk:red:unsure_triage_to_police" in dangerous.rule_ids


# -- risk

def test_risk_from_flags_phrases_and_repeats():
    assert domain.grade_risk([], "邻居噪音", 0, CATALOGUE)[0] is RiskColour.GREEN
    assert domain.grade_risk(["minors"], "邻居噪音", 0, CATALOGUE)[0] is RiskColour.YELLOW
    colour, reasons = domain.grade_risk([], "有人持刀威胁", 0, CATALOGUE)
    assert colour is RiskColour.RED and "risk:red:持刀" in reasons
    assert domain.grade_risk(["weapons"], "x", 0, CATALOGUE)[0] is RiskColour.RED
    assert domain.grade_risk([], "邻居噪音", 2, CATALOGUE)[0] is RiskColour.YELLOW  # repeats raise a step


def test_negated_phrases_do_not_raise_the_risk():
    assert domain.grade_risk([], "他们没有拿刀，就是吵", 0, CATALOGUE)[0] is RiskColour.GREEN
    assert domain.grade_risk([], "不是自杀，是老人走丢了", 0, CATALOGUE)[0] is not RiskColour.RED
    assert domain.grade_risk([], "他拿刀在楼下转", 0, CATALOGUE)[0] is RiskColour.RED


def test_a_matter_can_set_the_least_colour():
    colour, reasons = domain.grade_risk([], "楼顶有人", 0, CATALOGUE, RiskColour.RED)
    assert colour is RiskColour.RED and reasons == ("risk:red:matter",)


def test_red_dispute_is_led_by_the_police_with_the_mediators_assisting():
    red = _route("邻里之间因为漏水产生纠纷", flags=["violence"], model=LEAK)
    assert red.risk is RiskColour.RED
    assert red.category.code == "public_security.violence.fight"  # the model's best police reading
    assert [(a.unit.kind, a.role) for a in red.assignments] == [(UnitKind.POLICE, "lead"),
                                                                 (UnitKind.MEDIATION, "assist")]
    assert "risk:red:police_lead:public_security.violence.fight" in red.rule_ids


@pytest.mark.parametrize("code", [c.code for c in CATALOGUE.category
                                  if c.unit_kind in (UnitKind.MEDIATION, UnitKind.PETITION)])
@pytest.mark.parametrize("how", ["flag", "phrase"])
@pytest.mark.parametrize("given", [False, True])
def test_red_never_goes_to_mediation_or_petition_alone(code, how, given):
    model = FixedReading((code, 0.97), ("litigation.court_service.filing_consult", 0.03))
    kw = {"flags": ["weapons"]} if how == "flag" else {}
    text = "他拿着菜刀在门口" if how == "phrase" else "情况如上"
    category = code if given else None
    for division in ("339901001001", "339902003004", "339901"):
        plan = _route(text, division=division, category=category, model=model, **kw)
        assert isinstance(plan, domain.ManualQueue) or (
            plan.risk is RiskColour.RED and UnitKind.POLICE in {a.unit.kind for a in plan.assignments}), plan


def test_red_petition_keeps_its_lead_with_police_assisting():
    model = FixedReading(("petition.land.forced_demolition", 0.9), ("public_security.order.group_incident", 0.1))
    plan = _route("拆迁队来了，有人说要浇汽油", model=model)
    assert plan.lead.kind is UnitKind.PETITION
    assert [a.unit.kind for a in plan.assignments] == [UnitKind.PETITION, UnitKind.POLICE]


def test_red_risk_shortens_deadlines_and_lifts_the_level():
    green = _route("邻里之间因为漏水产生纠纷", model=LEAK)
    red = _route("邻里之间因为漏水产生纠纷", flags=["violence"], model=LEAK)
    assert green.lead.level is Level.VILLAGE and red.lead.level is Level.COUNTY  # police town → county
    fight = CATALOGUE.get("public_security.violence.fight")
    assert red.resolve_by - T0 == timedelta(hours=fight.resolve_limit.amount / 2)  # hours: halved exactly


def test_yellow_risk_shortens_deadlines_only():
    plan = _route("邻里之间因为漏水产生纠纷", flags=["elderly"], model=LEAK)
    assert plan.risk is RiskColour.YELLOW and plan.lead.level is Level.VILLAGE
    # 7 working days at 75 % are 5 (whole days, rounded down): from Monday 23 November, 17:00 Beijing
    # time, to the end of Monday 30 November (Tuesday 1 December 00:00 Beijing = 16:00 UTC)
    assert str(plan.resolve_limit) == "5 working days"
    assert plan.resolve_by == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


# -- units and joint handling

def test_catalogue_assists_make_joint_dispatch():
    plan = _route("两车追尾发生交通事故，双方对赔偿有争议", model=TRAFFIC)
    assert plan.category.code == "dispute.traffic.compensation"
    assert plan.lead.id == "mediation-339901-traffic" and plan.lead.specialties == ("traffic",)
    assert [a.role for a in plan.assignments] == ["lead", "assist"]
    assert plan.assignments[1].unit.id == "police-339901001"


def test_catalogue_is_a_tree_of_at_least_80_items_with_inherited_fields():
    assert len(CATALOGUE.category) >= 80
    # a grid takes no matter of its own: only what its access list admits of the others (小事不出格)
    assert {c.unit_kind for c in CATALOGUE.category} == set(UnitKind) - {UnitKind.GRID}
    assert all(len(c.path) == 3 and c.code.count(".") == 2 for c in CATALOGUE.category)
    loan = CATALOGUE.get("litigation.civil_suit.private_loan")
    assert loan.mediation_first and loan.unit_kind is UnitKind.COURT  # from its matter
    assert not CATALOGUE.get("litigation.civil_suit.labour_suit").mediation_first  # its own override


def test_specialty_committee_is_preferred_over_the_general_one():
    unit = domain.find_unit(UNITS, UnitKind.MEDIATION, Level.COUNTY, "339902003001", "medical")
    assert unit.id == "mediation-339902-medical"
    general = domain.find_unit(UNITS, UnitKind.MEDIATION, Level.COUNTY, "339902003001")
    assert general.id == "mediation-339902"


def test_unit_search_climbs_and_skips_excluded_units():
    first = domain.find_unit(UNITS, UnitKind.POLICE, Level.TOWN, "339902001001")
    assert first.id == "police-339902001"
    nxt = domain.find_unit(UNITS, UnitKind.POLICE, Level.TOWN, "339902001001", exclude={first.id})
    assert nxt.id == "police-339902" and nxt.level is Level.COUNTY


def test_no_unit_outside_the_city():
    assert domain.find_unit(UNITS, UnitKind.POLICE, Level.TOWN, "110101001001") is None
    assert isinstance(_route("有人打架", division="110101001001", model=FIGHT), domain.ManualQueue)


def test_superior_is_the_same_kind_one_level_up():
    town = UNITS.get("police-339901002")
    assert domain.superior_of(UNITS, town, "339901002001").id == "police-339901"


def test_routing_depends_on_the_case_not_on_the_wall_clock_or_the_directory_order():
    shuffled = domain.UnitDirectory(version=UNITS.version, unit=tuple(reversed(UNITS.unit)))
    for text, model in (("邻里漏水纠纷", LEAK), ("有人打架", FIGHT), ("两车追尾，赔偿有争议", TRAFFIC)):
        plan = _route(text, model=model)
        cat = plan.category
        assert (plan.acknowledge_by, plan.resolve_by) == (cat.acknowledge_limit.due(T0), cat.resolve_limit.due(T0))
        for division in ("339901001001", "339902003004"):
            assert domain.route(_facts(text, division), CATALOGUE, shuffled, model) == _route(
                text, division=division, model=model), (text, division)


def test_catalogue_with_duplicate_codes_is_refused():
    raw = CATALOGUE.model_dump()
    raw["category"] = [raw["category"][0], raw["category"][0]]
    raw.pop("domain", None)
    with pytest.raises(ValidationError, match="unique"):
        domain.Catalogue.model_validate(raw)


# -- lifecycle

def _state_with(plan: domain.Plan) -> domain.RoutingState:
    s = domain.RoutingState("c", "n", domain.CaseStatus.MANUAL, "v", T0, division_code="339901001001")
    s.apply_plan(plan, domain.new_dispatch_ids("seed", plan))
    return s


def test_accept_then_resolve_awaits_the_callback():
    s = _state_with(_route("有人打架", model=FIGHT))
    lead = s.lead
    assert s.accept(lead.dispatch_id, lead.unit_id) and s.status is domain.CaseStatus.ACCEPTED
    assert not s.accept(lead.dispatch_id, lead.unit_id)  # a repeated accept changes nothing
    assert s.resolve(lead.dispatch_id, lead.unit_id) and s.status is domain.CaseStatus.AWAITING_CALLBACK
    assert not s.resolve(lead.dispatch_id, lead.unit_id)
    s.close()
    assert s.status is domain.CaseStatus.CLOSED


def test_an_assists_resolution_does_not_move_the_case():
    s = _state_with(_route("两车追尾发生交通事故", model=TRAFFIC))
    assist = s.dispatches[1]
    assert s.resolve(assist.dispatch_id, assist.unit_id)
    assert s.status is domain.CaseStatus.DISPATCHED


# -- the routing desk (workflow rules)

DESK = workflow.RoutingDesk(CATALOGUE, UNITS, load_divisions(), FIGHT)


class Recorded:
    """What the desk decided, kept in memory (the handlers' Effects writes it to the database)."""

    def __init__(self, states: dict | None = None):
        self.states = states or {}
        self.changed, self.clock_starts, self.clock_stops, self.predictions, self.events = {}, [], [], {}, []

    def touch(self, state):
        self.states[state.case_id] = self.changed[state.case_id] = state

    def emit(self, topic, data, event_id, traceparent, time=None, actor=None):
        self.events.append((topic, data.EVENT_TYPE, event_id))


def _received(text: str, category: str | None = None, case_id: uuid.UUID | None = None) -> CaseReceived:
    return CaseReceived(case_id=case_id or uuid.uuid4(), case_number="339901-20261123-00001", channel="hotline",
                        title=text[:10], description=text, category=category,
                        location=Location(division_code="339901001001"), received_at=T0, risk_flags=[])


def _receive(fx: Recorded, case: CaseReceived, event_id: str = "ev-received") -> domain.RoutingState:
    DESK.case_received(fx, case, workflow.Cause(event_id, str(case.case_id), "intake.cases", None))
    return fx.states[str(case.case_id)]


def test_feedback_that_does_not_fit_its_dispatch_is_refused_and_changes_nothing():
    fx = Recorded()
    case = _received("有人打架", category="public_security.violence.fight")
    state = _receive(fx, case)
    lead, before, emitted = state.lead, copy.deepcopy(state), len(fx.events)

    def accept(dispatch_id: str, unit_id: str, topic: str = "feedback.police", subject: str = str(case.case_id)):
        fb = DispatchAccepted(case_id=case.case_id, dispatch_id=uuid.UUID(dispatch_id), unit_id=unit_id)
        DESK.dispatch_accepted(fx, fb, workflow.Cause("ev-accepted", subject, topic, None))

    for bad, why in (((str(uuid.uuid4()), lead.unit_id), "does not match a dispatch"),
                     ((lead.dispatch_id, "police-339902"), "does not match a dispatch"),
                     ((lead.dispatch_id, lead.unit_id, "feedback.court"), "for a dispatch to a police unit"),
                     ((lead.dispatch_id, lead.unit_id, "feedback.police", str(uuid.uuid4())), "was dispatched")):
        with pytest.raises(workflow.EventRefused, match=why):
            accept(*bad)
    assert state == before and len(fx.events) == emitted and fx.clock_stops == []
    accept(lead.dispatch_id, lead.unit_id)
    assert state.status is domain.CaseStatus.ACCEPTED and fx.clock_stops == [(lead.dispatch_id, "acknowledge")]


def test_event_ids_derive_from_the_cause_only():
    case = _received("小区门口有人打架斗殴")
    first, again, other = Recorded(), Recorded(), Recorded()
    _receive(first, case)
    _receive(again, _received(case.description, case_id=case.case_id))
    _receive(other, case, "ev-another")
    assert [e[1] for e in first.events] == ["org.onewindow.case.routed.v1", "org.onewindow.case.dispatched.v1"]
    assert first.events == again.events  # a replay or a retry of the same event decides the same ids
    assert {e[2] for e in first.events}.isdisjoint(e[2] for e in other.events)
    lead = first.states[str(case.case_id)].lead
    assert first.events[1][2] == lead.dispatch_id == domain.new_dispatch_ids(
        "ev-received", _route(case.description, model=FIGHT))[0]


def test_a_new_plan_ends_the_open_dispatches():
    s = _state_with(_route("有人打架", model=FIGHT))
    old = s.lead
    plan = domain.plan_for(CATALOGUE.get("public_security.violence.fight"), RiskColour.GREEN, "339901001001", CATALOGUE,
                           UNITS, T0, exclude=frozenset({old.unit_id}), reason=RoutingReason.RETURN)
    s.apply_plan(plan, domain.new_dispatch_ids("again", plan))
    assert old.status is domain.DispatchStatus.ENDED and s.lead.unit_id == "police-339901"


def test_dispatch_ids_are_deterministic():
    plan = _route("有人打架", model=FIGHT)
    assert domain.new_dispatch_ids("x", plan) == domain.new_dispatch_ids("x", plan)
    assert domain.new_dispatch_ids("x", plan) != domain.new_dispatch_ids("y", plan)


# -- clocks

def test_clock_turns_yellow_then_red():
    c = domain.Clock("d", "resolve", T0, T0 + timedelta(hours=10))
    assert c.colour_at(T0 + timedelta(hours=7), 0.75) is domain.ClockColour.WHITE
    assert c.next_change(0.75) == T0 + timedelta(hours=7.5)
    assert c.colour_at(T0 + timedelta(hours=7.5), 0.75) is domain.ClockColour.YELLOW
    assert c.colour_at(T0 + timedelta(hours=10), 0.75) is domain.ClockColour.RED


def test_paused_clock_keeps_its_colour_and_resuming_moves_the_due_time():
    c = domain.Clock("d", "resolve", T0, T0 + timedelta(hours=10))
    paused = c.pause(T0 + timedelta(hours=2))
    assert paused.colour_at(T0 + timedelta(hours=20), 0.75) is domain.ClockColour.WHITE
    assert paused.next_change(0.75) is None
    resumed = paused.resume(T0 + timedelta(hours=5))
    assert resumed.due_at == T0 + timedelta(hours=13) and resumed.paused_at is None
