"""Routing rules and the routing state, without a broker or database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.router import domain
from shared.contracts import CaseReceived, Location
from shared.contracts.events import Level
from shared.topics import UnitKind

CATALOGUE = domain.load_catalogue()
UNITS = domain.load_units()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _case(text: str, division: str = "339901001001", category: str | None = None) -> CaseReceived:
    return CaseReceived(
        case_id=uuid.uuid4(), case_number="339901-20261123-00001", channel="hotline", title=text[:10],
        description=text, category=category, location=Location(division_code=division), received_at=T0,
    )


def test_given_category_wins_over_text():
    d = domain.route(_case("有人打架", category="civil.litigation"), CATALOGUE, UNITS)
    assert isinstance(d, domain.Dispatch)
    assert d.category.code == "civil.litigation" and d.unit.kind is UnitKind.COURT
    assert d.rule_ids[0] == "category:civil.litigation"


def test_text_is_triaged_by_weighted_phrases_and_explained():
    d = domain.route(_case("小区门口有人打架斗殴"), CATALOGUE, UNITS)
    assert isinstance(d, domain.Dispatch)
    assert d.unit.id == "police-339901001" and d.unit.level is Level.TOWN
    assert "phrase:public_security.violence:打架" in d.rule_ids
    assert d.rule_ids[-1] == "jurisdiction:town:police-339901001"


def test_deadlines_run_from_the_received_time():
    d = domain.route(_case("有人打架"), CATALOGUE, UNITS)
    assert d.acknowledge_by == T0 + timedelta(hours=1)
    assert d.resolve_by == T0 + timedelta(hours=24)


def test_no_match_goes_to_the_manual_queue():
    d = domain.route(_case("路灯坏了"), CATALOGUE, UNITS)
    assert isinstance(d, domain.ManualQueue) and "no catalogue rule" in d.reason


def test_ambiguous_text_goes_to_the_manual_queue():
    # one police phrase, one court phrase, one mediation phrase: nobody is confident
    d = domain.route(_case("打架以后去法院，想调解"), CATALOGUE, UNITS)
    assert isinstance(d, domain.ManualQueue) and "confidence" in d.reason


def test_unit_search_climbs_to_the_county_when_the_town_has_none():
    unit = domain.find_unit(UNITS, UnitKind.POLICE, Level.TOWN, "339902001001")
    assert unit is not None and unit.id == "police-339902" and unit.level is Level.COUNTY


def test_no_unit_outside_the_city():
    assert domain.find_unit(UNITS, UnitKind.POLICE, Level.TOWN, "110101001001") is None
    d = domain.route(_case("有人打架", division="110101001001"), CATALOGUE, UNITS)
    assert isinstance(d, domain.ManualQueue) and "no police unit" in d.reason


def test_routing_is_deterministic():
    case = _case("邻里漏水纠纷")
    assert domain.route(case, CATALOGUE, UNITS) == domain.route(case, CATALOGUE, UNITS)


def test_catalogue_with_duplicate_codes_is_refused():
    raw = CATALOGUE.model_dump()
    raw["category"] = [raw["category"][0], raw["category"][0]]
    with pytest.raises(ValidationError, match="unique"):
        domain.Catalogue.model_validate(raw)


def _state() -> domain.RoutingState:
    return domain.RoutingState("c", "n", domain.CaseStatus.DISPATCHED, "v", T0, dispatch_id="d", unit_id="u")


def test_accept_then_resolve_closes_once():
    s = _state()
    assert s.accept("d", "u") and s.status is domain.CaseStatus.ACCEPTED
    assert not s.accept("d", "u")  # a repeated accept changes nothing
    assert s.resolve("d", "u") and s.status is domain.CaseStatus.CLOSED
    assert not s.resolve("d", "u")


def test_feedback_for_another_dispatch_or_unit_is_refused():
    s = _state()
    with pytest.raises(domain.FeedbackRefused):
        s.accept("other", "u")
    with pytest.raises(domain.FeedbackRefused):
        s.resolve("d", "other-unit")
