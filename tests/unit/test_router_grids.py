"""The grid as a unit (小事不出格): a minor case of a matter on the grid's access list goes to the
grid first; anything else never does, and an operator cannot send it there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router import domain, grids
from shared.contracts.events import Level, UnitKind
from shared.grids import load_grids
from shared.refusals import ActionRefused

CATALOGUE = domain.load_catalogue()
GRIDS = load_grids()
UNITS = grids.with_grid_units(domain.load_units(), GRIDS)
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GRID = "339901001001-01"


def _plan(category: str, grid_id: str | None = GRID, flags=(), text: str = "楼上每晚吵闹") -> domain.Plan:
    facts = domain.CaseFacts(text, category, "339901001001", list(flags), T0, channel="grid")
    plan = domain.route(facts, CATALOGUE, UNITS, None)
    assert isinstance(plan, domain.Plan)
    return grids.grid_first(plan, grid_id, GRIDS, UNITS)


def test_every_grid_is_a_unit_of_kind_grid_serving_its_village():
    unit = UNITS.get("grid-" + GRID)
    assert (unit.kind, unit.level, unit.serves) == (UnitKind.GRID, Level.GRID, ("339901001001",))
    assert len([u for u in UNITS.unit if u.kind is UnitKind.GRID]) == len(GRIDS.grid)


def test_a_minor_matter_on_the_access_list_goes_to_the_grid_first():
    plan = _plan("dispute.neighbourhood.noise")
    assert [(a.unit.id, a.role) for a in plan.assignments] == [("grid-" + GRID, "lead")]
    assert f"grid_first:{GRID}" in plan.rule_ids
    usual = domain.route(domain.CaseFacts("楼上每晚吵闹", "dispute.neighbourhood.noise", "339901001001", [], T0,
                                          channel="grid"), CATALOGUE, UNITS, None)
    assert (plan.acknowledge_by, plan.resolve_by) == (usual.acknowledge_by, usual.resolve_by)


@pytest.mark.parametrize("category, grid_id, flags", [
    ("public_security.violence.fight", GRID, ()),  # not on the access list
    ("dispute.consumer.services", GRID, ()),  # a market grid's matter, not a general grid's
    ("dispute.neighbourhood.noise", None, ()),  # the case has no grid
    ("dispute.neighbourhood.noise", GRID, ("elderly",)),  # yellow: not a minor matter
    ("dispute.neighbourhood.noise", GRID, ("weapons",)),  # red
])
def test_anything_else_never_goes_to_a_grid(category, grid_id, flags):
    plan = _plan(category, grid_id, flags)
    assert all(a.unit.kind is not UnitKind.GRID for a in plan.assignments)


def test_a_returned_case_is_planned_again_without_the_grid():
    category = CATALOGUE.get("dispute.neighbourhood.noise")
    again = domain.plan_for(category, domain.RiskColour.GREEN, "339901001001", CATALOGUE, UNITS, T0,
                            exclude=frozenset({"grid-" + GRID}), reason=domain.RoutingReason.RETURN)
    assert again.lead.kind is UnitKind.MEDIATION
    assert grids.grid_first(again, GRID, GRIDS, UNITS) is again  # a re-plan never goes back to the grid


def test_an_operator_cannot_dispatch_another_matter_to_a_grid():
    grid_unit, market = UNITS.get("grid-" + GRID), UNITS.get("grid-339901001002-M1")
    grids.check_grid_dispatch(grid_unit, "dispute.neighbourhood.pets", GRIDS)
    grids.check_grid_dispatch(market, "dispute.consumer.services", GRIDS)
    grids.check_grid_dispatch(UNITS.get("police-339901"), "public_security.violence.fight", GRIDS)
    for unit, category in ((grid_unit, "public_security.violence.fight"), (grid_unit, None),
                           (grid_unit, "dispute.consumer.services")):
        with pytest.raises(ActionRefused) as refused:
            grids.check_grid_dispatch(unit, category, GRIDS)
        assert (refused.value.status, refused.value.title) == (422, "Not a grid matter")
