"""The grids (网格) as master data: each within one village/community, with its 网格长 and
专职网格员 (token subjects), 专属网格 for schools, hospitals and markets, and the grid access list
(网格事项准入) that says which catalogue matters a grid may be asked to handle itself."""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.divisions import DivisionDirectory

GRIDS_FILE = Path(__file__).parent / "reference" / "grids.toml"
GridKind = Literal["general", "school", "hospital", "market"]
Subject = str


class Grid(BaseModel):
    """One grid: its village, its kind, its leader (网格长) and workers (专职网格员)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^\d{12}-[A-Z0-9]{1,8}$", max_length=40)
    name: str = Field(min_length=1, max_length=100)
    division: str = Field(pattern=r"^\d{12}$")
    kind: GridKind
    leader: Subject = Field(min_length=1)
    workers: tuple[Subject, ...] = Field(min_length=1)

    @property
    def staff(self) -> tuple[Subject, ...]:
        """Everyone who reports for the grid: its leader and its workers."""
        return (self.leader, *self.workers)


class GridDirectory(BaseModel):
    """Every grid and the access list, versioned. A person serves one grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    access: dict[GridKind, tuple[str, ...]]
    grid: tuple[Grid, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "GridDirectory":
        ids = [g.id for g in self.grid]
        if len(set(ids)) != len(ids):
            raise ValueError("grid ids must be unique")
        staff = [s for g in self.grid for s in g.staff]
        if len(set(staff)) != len(staff):
            raise ValueError("a person serves one grid: " + ", ".join(sorted({s for s in staff if staff.count(s) > 1})))
        if bad := [g.id for g in self.grid if not g.id.startswith(g.division)]:
            raise ValueError(f"a grid id begins with its village's code: {bad}")
        if "general" not in self.access:
            raise ValueError("the access list needs the general grids' matters")
        return self

    def check_divisions(self, divisions: DivisionDirectory) -> None:
        """Refuse grids whose village is not a village of the division directory."""
        bad = [g.id for g in self.grid if (d := divisions.get(g.division)) is None or d.level != "village"]
        if bad:
            raise ValueError(f"grids outside any known village: {bad}")

    @cached_property
    def _by_id(self) -> dict[str, Grid]:
        return {g.id: g for g in self.grid}

    @cached_property
    def _by_person(self) -> dict[str, Grid]:
        return {s: g for g in self.grid for s in g.staff}

    def get(self, grid_id: str | None) -> Grid | None:
        """A grid by its id."""
        return self._by_id.get(grid_id) if grid_id else None

    def of_person(self, subject: str) -> Grid | None:
        """The grid a leader or worker serves."""
        return self._by_person.get(subject)

    def in_village(self, division: str) -> list[Grid]:
        """The grids of a village/community."""
        return [g for g in self.grid if g.division == division]

    def admitted(self, grid: Grid) -> tuple[str, ...]:
        """The matters a grid may be asked to handle: the general list plus its kind's own."""
        return tuple(dict.fromkeys([*self.access["general"], *(self.access.get(grid.kind, ()) if grid.kind != "general"
                                                                else ())]))

    def admits(self, grid: Grid, category: str | None) -> bool:
        """Whether the access list lets the grid handle a matter (an entry admits its own code and
        every code below it)."""
        return bool(category) and any(category == m or category.startswith(m + ".") for m in self.admitted(grid))


def load_grids(path: Path = GRIDS_FILE) -> GridDirectory:
    """The grid directory from its TOML."""
    return GridDirectory.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


class GridRefusal(ValueError):
    """A grid worker's report that does not fit the worker's grid (answered 403 with the reason)."""


def grid_of_report(grids: GridDirectory, subject: str, token_grid: str | None, division_code: str,
                   location_grid: str | None) -> Grid:
    """The grid a grid worker's report belongs to: the token's `grid` claim when it has one, else
    the master data's grid of the worker. Refused (GridRefusal) when the worker serves no grid, the
    token names another grid than the master data, the report names another grid, or the place lies
    outside the grid's village."""
    known = grids.of_person(subject)
    if token_grid is not None:
        grid = grids.get(token_grid)
        if grid is None:
            raise GridRefusal(f"the token names grid {token_grid!r}, which the grid directory does not know")
        if known is not None and known.id != grid.id:
            raise GridRefusal("the token's grid is not the grid the directory gives this worker")
    elif known is None:
        raise GridRefusal("this grid worker serves no grid in the grid directory")
    else:
        grid = known
    if location_grid is not None and location_grid != grid.id:
        raise GridRefusal(f"a worker of grid {grid.id} may not report for grid {location_grid}")
    if division_code != grid.division:
        raise GridRefusal(f"the place ({division_code}) lies outside grid {grid.id} ({grid.division})")
    return grid
