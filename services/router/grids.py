"""The grid as a unit (pure): each grid of the shared grid directory is a unit of kind `grid` at
level `grid` (id `grid-<grid id>`, serving its village), reading `dispatch.grid` and writing
`feedback.grid` like any unit kind. 小事不出格: a minor (green) case of a grid whose access list
(网格事项准入) admits its matter goes to that grid first; if the grid returns it, the router routes it
as usual without the grid. Nothing else is ever dispatched to a grid."""

from __future__ import annotations

from dataclasses import replace

from services.router import domain
from shared.contracts.events import Level, RiskColour, RoutingReason, UnitKind
from shared.grids import Grid, GridDirectory
from shared.refusals import ActionRefused

PREFIX = "grid-"


def unit_id_of(grid: Grid) -> str:
    """The unit id of a grid."""
    return PREFIX + grid.id


def grid_of_unit(grids: GridDirectory, unit: domain.Unit) -> Grid | None:
    """The grid a unit of kind grid stands for."""
    return grids.get(unit.id.removeprefix(PREFIX)) if unit.kind is UnitKind.GRID else None


def with_grid_units(units: domain.UnitDirectory, grids: GridDirectory) -> domain.UnitDirectory:
    """The unit directory with a unit per grid (the grid directory is their one source)."""
    own = tuple(domain.Unit(id=unit_id_of(g), name=g.name, kind=UnitKind.GRID, level=Level.GRID,
                            serves=(g.division,)) for g in grids.grid)
    return domain.UnitDirectory(version=f"{units.version}+grids.{grids.version}",
                                unit=(*(u for u in units.unit if u.kind is not UnitKind.GRID), *own))


def grid_first(plan: domain.Plan, grid_id: str | None, grids: GridDirectory,
               units: domain.UnitDirectory) -> domain.Plan:
    """小事不出格: the plan with the case's grid as its only unit when the case is minor (green), new
    (not a re-plan) and of a matter the grid's access list admits; else the plan as it was. The
    deadlines stay the matter's."""
    grid = grids.get(grid_id)
    if grid is None or plan.reason is not RoutingReason.INITIAL or plan.risk is not RiskColour.GREEN:
        return plan
    if not grids.admits(grid, plan.category.code):
        return plan
    unit = units.get(unit_id_of(grid))
    if unit is None:
        return plan
    return replace(plan, assignments=(domain.Assigned(unit, "lead"),),
                   rule_ids=(*plan.rule_ids, f"grid_first:{grid.id}"))


def grid_refusal(unit: domain.Unit | None, category: str | None, grids: GridDirectory) -> str | None:
    """Why a case of `category` may not be dispatched to `unit` (a grid whose access list does not
    admit the matter), or None."""
    if unit is None or unit.kind is not UnitKind.GRID:
        return None
    grid = grid_of_unit(grids, unit)
    if grid is None or not grids.admits(grid, category):
        return f"{category!r} is not on the access list (网格事项准入) of {unit.id}"
    return None


def check_grid_dispatch(unit: domain.Unit | None, category: str | None, grids: GridDirectory) -> None:
    """Refuse (422) an operator's dispatch to a grid of a matter its access list does not admit."""
    if (why := grid_refusal(unit, category, grids)) is not None:
        raise ActionRefused(422, "Not a grid matter", why)
