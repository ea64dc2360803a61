"""The grid as master data: the directory's consistency, a worker's grid, the access list
(网格事项准入), and the refusal of a grid worker's report outside the worker's grid."""

from __future__ import annotations

import pytest

from services.router.domain import load_catalogue
from shared.divisions import load_divisions
from shared.grids import GRIDS_FILE, GridRefusal, grid_of_report, load_grids

GRIDS = load_grids()


def test_every_grid_lies_in_a_village_and_every_admitted_matter_is_catalogued():
    GRIDS.check_divisions(load_divisions())
    codes = {c.code for c in load_catalogue().category}
    for kind, matters in GRIDS.access.items():
        for m in matters:
            assert any(c == m or c.startswith(m + ".") for c in codes), f"{kind}: {m} is no catalogue matter"
    assert {g.kind for g in GRIDS.grid} == {"general", "school", "hospital", "market"}  # 专属网格 too


def test_the_access_list_admits_a_grids_own_matters_and_nothing_else():
    general, market = GRIDS.get("339901001001-01"), GRIDS.get("339901001002-M1")
    assert GRIDS.admits(general, "dispute.neighbourhood.noise")  # a matter admits its items
    assert not GRIDS.admits(general, "dispute.neighbourhoodx.noise")  # a prefix is a whole code
    assert not GRIDS.admits(general, "public_security.violence.fight")
    assert not GRIDS.admits(general, None)
    assert not GRIDS.admits(general, "dispute.consumer.services")
    assert GRIDS.admits(market, "dispute.consumer.services") and GRIDS.admits(market, "dispute.neighbourhood.pets")


def test_a_workers_grid_comes_from_the_token_or_the_directory():
    assert grid_of_report(GRIDS, "grid-1", None, "339901001001", None).id == "339901001001-01"
    assert grid_of_report(GRIDS, "gl-339901001001-02", None, "339901001001", "339901001001-02").id \
        == "339901001001-02"  # the leader reports for the grid too
    # a worker the directory does not know yet, whose token names the grid
    assert grid_of_report(GRIDS, "gw-new", "339901001002-M1", "339901001002", None).id == "339901001002-M1"


@pytest.mark.parametrize("subject, token_grid, division, named, why", [
    ("grid-1", None, "339901001002", None, "outside grid"),  # another village
    ("grid-1", None, "339901001001", "339901001001-02", "may not report for grid"),  # a neighbouring grid
    ("grid-1", "339901001001-02", "339901001001", None, "not the grid the directory gives"),
    ("gw-nobody", None, "339901001001", None, "serves no grid"),
    ("gw-new", "339999999999-01", "339901001001", None, "does not know"),
])
def test_a_report_outside_the_workers_grid_is_refused(subject, token_grid, division, named, why):
    with pytest.raises(GridRefusal, match=why):
        grid_of_report(GRIDS, subject, token_grid, division, named)


@pytest.mark.parametrize("edit, message", [
    (('workers = ["gw-339901001002-01a"]', 'workers = ["grid-1"]'), "serves one grid"),
    (('id = "339901001002-01"', 'id = "339901001001-09"'), "begins with its village"),
    (('id = "339901001002-M1"', 'id = "339901001001-01"'), "unique"),
])
def test_an_inconsistent_directory_is_refused(tmp_path, edit, message):
    (tmp_path / "g.toml").write_text(GRIDS_FILE.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_grids(tmp_path / "g.toml")
