"""The grid as master data: the directory's consistency, a worker's grid, the access list
(网格事项准入), and the refusal of a grid worker's report outside the worker's grid."""

from __future__ import annotations

import pytest

from services.router.domain import load_catalogue
from shared.divisions import load_divisions
from shared.grids import GRIDS_FILE, GridRefusal, grid_of_report, load_grids

GRIDS = load_grids()
GRID_ID = "339901001001-01"


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


def test_a_submission_names_only_a_known_grid_of_its_division():
    from pydantic import ValidationError

    from services.intake.domain import validate_submission

    divisions = load_divisions()

    def submit(division: str, grid: str | None):
        return validate_submission({"channel": "window", "description": "楼道堆物",
                                    "location": {"division_code": division, "grid_id": grid}}, divisions, GRIDS)

    assert submit("339901001001", GRID_ID).location.grid_id == GRID_ID
    assert submit("339901001001", None).location.grid_id is None
    with pytest.raises(ValidationError, match="unknown grid"):
        submit("339901001001", "339901001001-99")
    with pytest.raises(ValidationError, match="not in 339901001002"):
        submit("339901001002", GRID_ID)
    # without the grid directory (a caller that has none) the contract checks the form only
    assert validate_submission({"channel": "window", "description": "x", "location": {
        "division_code": "339901001001", "grid_id": "anything"}}, divisions).location.grid_id == "anything"
