"""The mediation state machine and mediator choice (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.mediation import domain
from services.mediation.domain import Status

DIRECTORY = domain.load_directory()
T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _m() -> domain.Mediation:
    return domain.new_mediation("m1", "c1", "dispatch", "mediation-339901-family", "m-x", T0)


def test_mediator_choice_prefers_specialty_then_load_and_respects_capacity():
    committee = "mediation-339901001"
    mediators = DIRECTORY.mediators_of(committee)
    assert len(mediators) == 2
    family = next(m for m in mediators if "family" in m.specialties)
    assert domain.choose_mediator(DIRECTORY, committee, "family", {}).id == family.id
    other = next(m for m in mediators if m is not family)
    assert domain.choose_mediator(DIRECTORY, committee, None, {other.id: 3}).id == family.id  # lighter load
    full = {m.id: m.capacity for m in mediators}
    assert domain.choose_mediator(DIRECTORY, committee, None, full) is None


def test_the_lifecycle_to_confirmation():
    m = _m()
    for to in (Status.SCHEDULED, Status.HELD, Status.SCHEDULED, Status.HELD):
        m.move(to, T0)
    m.move(Status.AGREED, T0, agreement={"text": "赔偿2000元", "amount": 2000})
    m.move(Status.CONFIRMATION_REQUESTED, T0)
    m.move(Status.CONFIRMED, T0)
    assert m.sessions == 2 and m.agreement["amount"] == 2000 and len(m.history) == 7


@pytest.mark.parametrize(("path", "illegal"), [
    ([], Status.HELD),  # no session without scheduling
    ([], Status.AGREED),
    ([Status.SCHEDULED], Status.FAILED),  # an outcome needs a session held
    ([Status.SCHEDULED, Status.HELD, Status.FAILED], Status.SCHEDULED),  # terminal
    ([Status.SCHEDULED, Status.HELD, Status.AGREED], Status.CONFIRMED),  # confirmation must be requested
])
def test_illegal_transitions_are_refused(path, illegal):
    m = _m()
    for to in path:
        m.move(to, T0)
    before = (m.status, len(m.history))
    with pytest.raises(domain.IllegalTransition):
        m.move(illegal, T0)
    assert (m.status, len(m.history)) == before


def test_time_limit_and_one_extension():
    m = _m()
    assert not m.overdue(T0 + timedelta(days=29))
    assert m.overdue(T0 + timedelta(days=30))
    m.extend()
    assert not m.overdue(T0 + timedelta(days=59))
    with pytest.raises(domain.IllegalTransition):
        m.extend()


def test_success_rate():
    assert domain.success_rate([Status.AGREED, Status.FAILED, Status.CONFIRMED, Status.ASSIGNED]) == 0.667
    assert domain.success_rate([Status.ASSIGNED]) is None


def test_directory_refuses_orphan_mediators():
    raw = DIRECTORY.model_dump()
    raw["mediator"][0]["committee"] = "nowhere"
    with pytest.raises(ValueError, match="unknown committees"):
        domain.Directory.model_validate(raw)


def test_a_referral_goes_to_a_specialist_county_committee_with_capacity():
    placed = domain.place_referral(DIRECTORY, "339901001001", "family", {})
    assert placed.committee.level == "county" and "family" in placed.committee.specialties
    full = {m.id: m.capacity for m in DIRECTORY.mediator}
    assert domain.place_referral(DIRECTORY, "339901001001", "family", full) is None
    assert domain.place_referral(DIRECTORY, "449901", "family", {}) is None  # no committee serves it


def test_a_dispatch_to_an_unknown_or_full_committee_says_why():
    assert "not a mediation committee" in domain.place_dispatch(DIRECTORY, "police-339901", {})
    committee = "mediation-339901001"
    full = {m.id: m.capacity for m in DIRECTORY.mediators_of(committee)}
    assert "spare capacity" in domain.place_dispatch(DIRECTORY, committee, full)
    assert domain.place_dispatch(DIRECTORY, committee, {}).committee.id == committee


def test_the_event_map_takes_exactly_what_arrives_on_mediations_topics():
    from services.mediation.handlers import EVENT_HANDLERS
    from services.mediation.risk_handlers import TAKES
    from shared import topics

    def arriving(group: str) -> set[str]:
        return {t for topic in topics.SERVICES["mediation"].consumer(group).topics for t in topics.PUBLISHERS[topic].types}

    assert set(EVENT_HANDLERS) == arriving("mediation")
    assert set(TAKES) == arriving("mediation-risks")
