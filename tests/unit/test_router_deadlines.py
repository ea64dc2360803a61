"""Time limits counted as the rules count them (services/router/deadlines.py, docs/router.md "How limits
are counted"): hours, calendar days, and working days of the PRC calendar with its swapped working days
(调休), in Beijing time; clocks' yellow share, pauses and extensions in the same unit. Pure: no database."""

from __future__ import annotations

import logging
import tomllib
from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import pytest
from pydantic import ValidationError

from services.router import deadlines, domain
from services.router.deadlines import BEIJING, Limit, LimitUnit

CATALOGUE = domain.load_catalogue()
UNITS = domain.load_units()


def bj(*args) -> datetime:
    """A moment given in Beijing time."""
    return datetime(*args, tzinfo=BEIJING)


def end_of(day: date) -> datetime:
    """24:00 of a Beijing day."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), BEIJING)


# -- the calendar the counting relies on


def test_the_package_knows_the_2026_spring_festival_and_its_swapped_working_days():
    """The facts the tests below rely on, read from the package, not assumed: 15–23 February 2026 off;
    Saturdays 14 and 28 February worked (调休)."""
    days = {date(2026, 2, 1) + timedelta(days=i) for i in range(28)}
    off = sorted(d for d in days if not chinese_calendar.is_workday(d))
    assert [d for d in off if d.weekday() < 5] == [date(2026, 2, d) for d in (16, 17, 18, 19, 20, 23)]
    assert all(date(2026, 2, d) in off for d in range(15, 24))
    swapped = sorted(d for d in days if d.weekday() >= 5 and chinese_calendar.is_workday(d))
    assert swapped == [date(2026, 2, 14), date(2026, 2, 28)]
    assert all(deadlines.is_working_day(d) == chinese_calendar.is_workday(d) for d in days)


# -- due times


def test_three_working_days_started_before_the_spring_festival_end_after_it():
    """Thursday 12 February: Friday 13 (1), Saturday 14, a swapped working day (2), nine days off, Tuesday
    24 (3) — due at its 24:00, not on Monday 16 as weekends alone would say."""
    due = Limit.parse("3 working days").due(bj(2026, 2, 12, 10, 0))
    assert due == end_of(date(2026, 2, 24))
    assert due.tzinfo is UTC and due == datetime(2026, 2, 24, 16, 0, tzinfo=UTC)


def test_a_swapped_saturday_counts_as_a_working_day_and_an_ordinary_one_does_not():
    one = Limit.parse("1 working day")
    assert one.due(bj(2026, 2, 27, 15, 0)) == end_of(date(2026, 2, 28))  # Friday → Saturday 28 (调休)
    assert one.due(bj(2026, 2, 6, 15, 0)) == end_of(date(2026, 2, 9))  # Friday → Monday: 7 and 8 are rest days


def test_the_day_of_the_start_is_not_counted_and_days_are_beijing_days():
    one = Limit.parse("1 working day")
    assert one.due(bj(2026, 11, 23, 0, 0)) == end_of(date(2026, 11, 24))  # Monday 00:00 → end of Tuesday
    assert one.due(bj(2026, 11, 22, 23, 59)) == end_of(date(2026, 11, 23))  # Sunday night → end of Monday
    # 20:00 UTC on Monday is already Tuesday 04:00 in Beijing: the limit counts from Tuesday
    assert one.due(datetime(2026, 11, 23, 20, 0, tzinfo=UTC)) == end_of(date(2026, 11, 25))


def test_calendar_days_ignore_holidays():
    """A petition's 15 calendar days (信访工作条例) run through the Spring Festival as through any days."""
    assert Limit.parse("15 calendar days").due(bj(2026, 2, 10, 10, 0)) == end_of(date(2026, 2, 25))
    land = CATALOGUE.get("petition.land.compensation")
    assert (str(land.acknowledge_limit), str(land.resolve_limit)) == ("15 calendar days", "60 calendar days")
    plan = domain.plan_for(land, domain.RiskColour.GREEN, "339901001001", CATALOGUE, UNITS, bj(2026, 2, 10, 10, 0))
    assert plan.acknowledge_by == end_of(date(2026, 2, 25))
    assert plan.resolve_by == end_of(date(2026, 4, 11))  # 10 February + 60 days
    assert plan.limit_unit("resolve") is LimitUnit.CALENDAR_DAYS


def test_an_hours_limit_is_wall_clock_time_whatever_the_day():
    start = bj(2026, 2, 14, 22, 30)  # on the eve of the holiday
    assert Limit.parse("24 hours").due(start) == start + timedelta(hours=24)
    assert Limit.parse("0.5 hours").due(start) == start + timedelta(minutes=30)
    fight = CATALOGUE.get("public_security.violence.fight")
    plan = domain.plan_for(fight, domain.RiskColour.GREEN, "339901001001", CATALOGUE, UNITS, start)
    assert (plan.acknowledge_by, plan.resolve_by) == (start + timedelta(minutes=30), start + timedelta(hours=24))
    assert plan.limit_unit("acknowledge") is LimitUnit.HOURS


def test_general_demands_and_disputes_count_working_days():
    noise = CATALOGUE.get("dispute.neighbourhood.noise")
    assert (noise.acknowledge_limit, noise.resolve_limit) == (Limit(1, LimitUnit.WORKING_DAYS),
                                                              Limit(7, LimitUnit.WORKING_DAYS))
    plan = domain.plan_for(noise, domain.RiskColour.GREEN, "339901001001", CATALOGUE, UNITS, bj(2026, 2, 12, 10, 0))
    assert plan.acknowledge_by == end_of(date(2026, 2, 13))
    assert plan.resolve_by == end_of(date(2026, 2, 28))  # 13, 14 (调休) | 24–27 | 28 (调休)
    assert {c.resolve_limit.unit for c in CATALOGUE.category if c.unit_kind.value == "police"} == {LimitUnit.HOURS}
    assert {c.resolve_limit.unit for c in CATALOGUE.category if c.unit_kind.value == "petition"} == {
        LimitUnit.CALENDAR_DAYS}
    assert {c.resolve_limit.unit for c in CATALOGUE.category if c.unit_kind.value == "mediation"} == {
        LimitUnit.WORKING_DAYS}


def test_risk_shortens_days_to_whole_days_and_hours_exactly():
    seven = Limit.parse("7 working days")
    assert (seven.scaled(0.5), seven.scaled(0.75), seven.scaled(1.0)) == (
        Limit(3, LimitUnit.WORKING_DAYS), Limit(5, LimitUnit.WORKING_DAYS), seven)
    assert Limit.parse("1 working day").scaled(0.5) == Limit(1, LimitUnit.WORKING_DAYS)  # never below one day
    assert Limit.parse("60 calendar days").scaled(0.5) == Limit(30, LimitUnit.CALENDAR_DAYS)
    assert Limit.parse("0.5 hours").scaled(0.5) == Limit(0.25, LimitUnit.HOURS)


def test_beyond_the_known_years_weekends_alone_are_rest_days_with_a_warning(caplog):
    deadlines.is_working_day.cache_clear()
    deadlines._warn_unknown_year.cache_clear()
    with caplog.at_level(logging.WARNING, logger="services.router.deadlines"):
        assert deadlines.is_working_day(date(2099, 1, 2)) is True  # a Friday
        assert deadlines.is_working_day(date(2099, 1, 3)) is False  # a Saturday
        assert Limit.parse("1 working day").due(bj(2099, 1, 2, 10, 0)) == end_of(date(2099, 1, 5))
    warnings = [r for r in caplog.records if "2099" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per year, not per day


# -- limits in the catalogue


@pytest.mark.parametrize("text, limit", [
    ("24 hours", Limit(24, LimitUnit.HOURS)), ("1 hour", Limit(1, LimitUnit.HOURS)),
    ("0.5 hours", Limit(0.5, LimitUnit.HOURS)), ("15 calendar days", Limit(15, LimitUnit.CALENDAR_DAYS)),
    ("1 working day", Limit(1, LimitUnit.WORKING_DAYS)), ("5  working  days", Limit(5, LimitUnit.WORKING_DAYS)),
])
def test_limits_are_read_and_written_as_text(text, limit):
    assert Limit.parse(text) == limit
    assert Limit.parse(str(limit)) == limit


@pytest.mark.parametrize("text", ["5 workdays", "5 days", "2.5 working days", "0 hours", "-1 hours", "hours", ""])
def test_a_limit_that_cannot_be_read_is_refused(text):
    with pytest.raises(ValueError, match="time limit|whole number|longer than zero"):
        Limit.parse(text)


def _catalogue_with(matter_fields: dict, item_fields: dict | None = None) -> dict:
    raw = tomllib.loads(domain.REFERENCE.joinpath("catalogue.toml").read_text(encoding="utf-8"))
    matter = raw["domain"][3]["matter"][1]  # dispute.neighbourhood
    for k in ("acknowledge_limit", "resolve_limit"):
        matter.pop(k)
    matter.update(matter_fields)
    if item_fields:
        matter["item"][0].update(item_fields)
    return raw


def test_the_catalogue_names_the_item_whose_limit_cannot_be_read():
    raw = _catalogue_with({"acknowledge_limit": "1 working day", "resolve_limit": "7 workdays"})
    unreadable = r"dispute\.neighbourhood: resolve_limit '7 workdays' is not a time limit"
    with pytest.raises(ValidationError, match=unreadable):
        domain.Catalogue.model_validate(raw)
    raw = _catalogue_with({"acknowledge_limit": "1 working day"})
    with pytest.raises(ValidationError, match=r"dispute\.neighbourhood\.noise: no resolve_limit"):
        domain.Catalogue.model_validate(raw)
    raw = _catalogue_with({"acknowledge_limit": "1 working day", "resolve_limit": "7 working days",
                           "resolve_hours": 240})
    with pytest.raises(ValidationError, match="not both"):
        domain.Catalogue.model_validate(raw)


def test_an_older_catalogue_in_hours_is_still_read_and_an_item_overrides_its_matter():
    raw = _catalogue_with({"acknowledge_hours": 24, "resolve_hours": 240}, {"resolve_limit": "3 working days"})
    old = domain.Catalogue.model_validate(raw)
    noise, leak = old.get("dispute.neighbourhood.noise"), old.get("dispute.neighbourhood.water_leak")
    assert (noise.acknowledge_limit, noise.resolve_limit) == (Limit(24, LimitUnit.HOURS),
                                                              Limit(3, LimitUnit.WORKING_DAYS))
    assert leak.resolve_limit == Limit(240, LimitUnit.HOURS)
    assert domain.Catalogue.model_validate(old.model_dump()) == old  # limits dump as text and read back


# -- clocks


def test_a_pause_over_a_weekend_does_not_move_a_working_day_clock():
    start = bj(2026, 11, 23, 17, 0)  # Monday
    clock = domain.Clock("d", "resolve", start, Limit.parse("7 working days").due(start),
                         limit_unit=LimitUnit.WORKING_DAYS)
    assert clock.due_at == end_of(date(2026, 12, 2))
    # paused on Saturday, resumed on Sunday: no working time passed, the due time stays
    weekend = clock.pause(bj(2026, 11, 28, 10, 0)).resume(bj(2026, 11, 29, 20, 0))
    assert (weekend.due_at, weekend.started_at) == (clock.due_at, clock.started_at)
    # Friday 18:00 to Monday 09:00: 6 + 9 working hours, not the 63 hours of the wall clock
    over = clock.pause(bj(2026, 11, 27, 18, 0)).resume(bj(2026, 11, 30, 9, 0))
    assert over.due_at == end_of(date(2026, 12, 2)) + timedelta(hours=15)
    hours = domain.Clock("d", "resolve", start, clock.due_at)  # the same pause on an hours clock
    assert hours.pause(bj(2026, 11, 27, 18, 0)).resume(bj(2026, 11, 30, 9, 0)).due_at == clock.due_at + timedelta(
        hours=63)


def test_a_pause_over_the_spring_festival_moves_a_working_day_clock_by_its_working_days_only():
    start = bj(2026, 2, 10, 9, 0)
    clock = domain.Clock("d", "resolve", start, Limit.parse("10 working days").due(start),
                         limit_unit=LimitUnit.WORKING_DAYS)
    # paused Friday 13 February 12:00, resumed Tuesday 24 February 12:00: half of the 13th, all of the
    # 14th (调休), half of the 24th — two working days, not eleven calendar ones
    resumed = clock.pause(bj(2026, 2, 13, 12, 0)).resume(bj(2026, 2, 24, 12, 0))
    assert deadlines.elapsed(LimitUnit.WORKING_DAYS, bj(2026, 2, 13, 12, 0), bj(2026, 2, 24, 12, 0)) == timedelta(
        days=2)
    assert clock.due_at == end_of(date(2026, 3, 2))  # 11–14 (14: 调休), 24–28 (28: 调休), 2 March
    assert resumed.due_at == end_of(date(2026, 3, 4))  # two working days later: 3 and 4 March


def test_a_working_day_clock_turns_yellow_at_its_share_of_working_time():
    """5 working days from Monday 00:00: 144 working hours (the weekend counts none); 75 % is 108 hours,
    reached on Friday at noon — a wall-clock share would wait until Sunday."""
    start = bj(2026, 11, 23, 0, 0)
    clock = domain.Clock("d", "resolve", start, Limit.parse("5 working days").due(start),
                         limit_unit=LimitUnit.WORKING_DAYS)
    assert clock.due_at == end_of(date(2026, 11, 30))
    assert clock.next_change(0.75) == bj(2026, 11, 27, 12, 0)
    assert clock.colour_at(bj(2026, 11, 27, 11, 59), 0.75) is domain.ClockColour.WHITE
    assert clock.colour_at(bj(2026, 11, 27, 12, 0), 0.75) is domain.ClockColour.YELLOW
    assert clock.colour_at(bj(2026, 11, 29, 12, 0), 0.75) is domain.ClockColour.YELLOW  # Sunday
    assert clock.colour_at(end_of(date(2026, 11, 30)), 0.75) is domain.ClockColour.RED
    assert deadlines.elapsed(LimitUnit.WORKING_DAYS, start, clock.due_at) == timedelta(hours=144)


def test_an_extension_counts_in_its_own_unit():
    start = bj(2026, 11, 23, 17, 0)
    clock = domain.Clock("d", "resolve", start, end_of(date(2026, 11, 27)), limit_unit=LimitUnit.WORKING_DAYS)
    assert clock.extend(Limit.parse("5 working days")).due_at == end_of(date(2026, 12, 4))  # Friday → Friday
    assert clock.extend(Limit.parse("30 calendar days")).due_at == end_of(date(2026, 12, 27))
    assert clock.extend(Limit.parse("12 hours")).due_at == end_of(date(2026, 11, 27)) + timedelta(hours=12)
    # 延期 over the Spring Festival: one working day after Friday 13 February is Saturday 14 (调休)
    festive = domain.Clock("d", "resolve", start, end_of(date(2026, 2, 13)), limit_unit=LimitUnit.WORKING_DAYS)
    assert festive.extend(Limit.parse("2 working days")).due_at == end_of(date(2026, 2, 24))


def test_hours_clocks_behave_as_before():
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    c = domain.Clock("d", "resolve", t0, t0 + timedelta(hours=10))
    assert c.limit_unit is LimitUnit.HOURS
    assert c.next_change(0.75) == t0 + timedelta(hours=7.5)
    assert c.pause(t0 + timedelta(hours=2)).resume(t0 + timedelta(hours=5)).due_at == t0 + timedelta(hours=13)
