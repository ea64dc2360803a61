"""The router's decisions without a broker or database: triage, risk, units, lifecycle, clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.router import domain
from shared.contracts import Level, RiskColour, RoutingReason
from shared.topics import UnitKind

CATALOGUE = domain.load_catalogue()
UNITS = domain.load_units()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _facts(text: str, division: str = "339901001001", category: str | None = None, flags=(), repeats=0):
    return domain.CaseFacts(text, category, division, list(flags), T0, repeats)


def _route(*args, **kw) -> domain.Plan | domain.ManualQueue:
    return domain.route(_facts(*args, **kw), CATALOGUE, UNITS)


# -- triage

def test_given_category_wins_over_text():
    plan = _route("有人打架", category="civil.litigation")
    assert plan.category.code == "civil.litigation" and plan.lead.kind is UnitKind.COURT
    assert plan.rule_ids[0] == "category:civil.litigation"


def test_unknown_category_is_refused():
    with pytest.raises(domain.UnknownCategory):
        _route("有人打架", category="no.such.thing")


def test_text_is_triaged_by_segmented_phrases_and_explained():
    plan = _route("小区门口有人打架斗殴")
    assert plan.lead.id == "police-339901001" and plan.lead.level is Level.TOWN
    assert "phrase:public_security.violence:打架" in plan.rule_ids
    assert plan.rule_ids[-1] == "jurisdiction:town:police-339901001"


def test_phrases_do_not_match_across_word_boundaries():
    # "工资" inside "工资" matches, but "法院" must not be found in "做法院子" (做法 / 院子)
    hits = domain._phrase_hits("这种做法院子里的人都不同意", ["法院"], CATALOGUE)
    assert hits == set()


def test_no_match_and_ambiguity_go_to_the_manual_queue():
    assert isinstance(_route("路灯坏了"), domain.ManualQueue)
    ambiguous = _route("打架以后去法院起诉，想找邻居调解")
    assert isinstance(ambiguous, domain.ManualQueue) and "confidence" in ambiguous.reason


# -- risk

def test_risk_from_flags_phrases_and_repeats():
    assert domain.grade_risk([], "邻居噪音", 0, CATALOGUE)[0] is RiskColour.GREEN
    assert domain.grade_risk(["minors"], "邻居噪音", 0, CATALOGUE)[0] is RiskColour.YELLOW
    colour, reasons = domain.grade_risk([], "有人持刀威胁", 0, CATALOGUE)
    assert colour is RiskColour.RED and "risk:red:持刀" in reasons
    assert domain.grade_risk(["weapons"], "x", 0, CATALOGUE)[0] is RiskColour.RED
    assert domain.grade_risk([], "邻居噪音", 2, CATALOGUE)[0] is RiskColour.YELLOW  # repeats raise a step


def test_red_risk_shortens_deadlines_lifts_the_level_and_adds_police():
    green = _route("邻里之间因为漏水产生纠纷")
    red = _route("邻里之间因为漏水产生纠纷", flags=["violence"])
    assert green.risk is RiskColour.GREEN and red.risk is RiskColour.RED
    assert green.lead.level is Level.VILLAGE and red.lead.level is Level.TOWN
    assert red.resolve_by - T0 == (green.resolve_by - T0) / 2
    assert [(a.unit.kind, a.role) for a in red.assignments] == [(UnitKind.MEDIATION, "lead"),
                                                                 (UnitKind.POLICE, "assist")]


def test_yellow_risk_shortens_deadlines_only():
    plan = _route("邻里之间因为漏水产生纠纷", flags=["elderly"])
    assert plan.risk is RiskColour.YELLOW and plan.lead.level is Level.VILLAGE
    assert plan.resolve_by - T0 == timedelta(hours=360 * 0.75)


# -- units and joint handling

def test_catalogue_assists_make_joint_dispatch():
    plan = _route("两车追尾发生交通事故，双方对赔偿有争议")
    assert plan.category.code == "dispute.traffic"
    assert plan.lead.id == "mediation-339901-traffic" and plan.lead.specialties == ("traffic",)
    assert [a.role for a in plan.assignments] == ["lead", "assist"]
    assert plan.assignments[1].unit.id == "police-339901001"


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
    assert isinstance(_route("有人打架", division="110101001001"), domain.ManualQueue)


def test_superior_is_the_same_kind_one_level_up():
    town = UNITS.get("police-339901002")
    assert domain.superior_of(UNITS, town, "339901002001").id == "police-339901"


def test_routing_is_deterministic():
    assert _route("邻里漏水纠纷") == _route("邻里漏水纠纷")


def test_catalogue_with_duplicate_codes_is_refused():
    raw = CATALOGUE.model_dump()
    raw["category"] = [raw["category"][0], raw["category"][0]]
    with pytest.raises(ValidationError, match="unique"):
        domain.Catalogue.model_validate(raw)


# -- lifecycle

def _state_with(plan: domain.Plan) -> domain.RoutingState:
    s = domain.RoutingState("c", "n", domain.CaseStatus.MANUAL, "v", T0, division_code="339901001001")
    s.apply_plan(plan, domain.new_dispatch_ids("seed", plan))
    return s


def test_accept_then_resolve_awaits_the_callback():
    s = _state_with(_route("有人打架"))
    lead = s.lead
    assert s.accept(lead.dispatch_id, lead.unit_id) and s.status is domain.CaseStatus.ACCEPTED
    assert not s.accept(lead.dispatch_id, lead.unit_id)  # a repeated accept changes nothing
    assert s.resolve(lead.dispatch_id, lead.unit_id) and s.status is domain.CaseStatus.AWAITING_CALLBACK
    assert not s.resolve(lead.dispatch_id, lead.unit_id)
    s.close()
    assert s.status is domain.CaseStatus.CLOSED


def test_an_assists_resolution_does_not_move_the_case():
    s = _state_with(_route("两车追尾发生交通事故"))
    assist = s.dispatches[1]
    assert s.resolve(assist.dispatch_id, assist.unit_id)
    assert s.status is domain.CaseStatus.DISPATCHED


def test_feedback_for_another_dispatch_or_unit_is_refused():
    s = _state_with(_route("有人打架"))
    with pytest.raises(domain.FeedbackRefused):
        s.accept("other", s.lead.unit_id)
    with pytest.raises(domain.FeedbackRefused):
        s.resolve(s.lead.dispatch_id, "other-unit")


def test_a_new_plan_ends_the_open_dispatches():
    s = _state_with(_route("有人打架"))
    old = s.lead
    plan = domain.plan_for(CATALOGUE.get("public_security.violence"), RiskColour.GREEN, "339901001001", CATALOGUE,
                           UNITS, T0, exclude=frozenset({old.unit_id}), reason=RoutingReason.RETURN)
    s.apply_plan(plan, domain.new_dispatch_ids("again", plan))
    assert old.status is domain.DispatchStatus.ENDED and s.lead.unit_id == "police-339901"


def test_dispatch_ids_are_deterministic():
    plan = _route("有人打架")
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
