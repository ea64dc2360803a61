"""The checked-in JSON Schemas match the code, and no released contract was broken."""

from __future__ import annotations

import copy
import json

import pytest

from shared.contracts import schemas


def _checked_in(directory) -> dict[str, dict]:
    return {p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")}


def test_checked_in_schemas_are_what_the_models_generate():
    generated = schemas.event_schemas()
    checked_in = _checked_in(schemas.SCHEMA_DIR)
    assert sorted(checked_in) == sorted(generated), "run `onewindow contracts schemas` and commit the result"
    for event_type, schema in generated.items():
        assert json.loads(json.dumps(schema, sort_keys=True)) == checked_in[event_type], (
            f"{event_type} differs from its checked-in schema: run `onewindow contracts schemas`")


def test_no_released_contract_is_broken():
    current = schemas.event_schemas()
    released = _checked_in(schemas.RELEASED_DIR)
    assert released, "the released baseline is missing"
    for event_type, old in released.items():
        assert event_type in current, f"{event_type} was released and is no longer produced or accepted"
        problems = schemas.breaking_changes(old, current[event_type])
        assert problems == [], f"{event_type}: breaking change {problems}; publish a new version (…v2) instead"


BASE = schemas.event_schemas()["org.onewindow.dispatch.returned.v1"]


def _changed(edit) -> dict:
    new = copy.deepcopy(BASE)
    edit(new)
    return new


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s["properties"].pop("reason"), "reason: removed"),
        (lambda s: s["properties"].__setitem__("unit_id", {"type": "integer"}), "unit_id: type"),
        (lambda s: (s["properties"].__setitem__("urgency", {"type": "string"}),
                    s["required"].append("urgency")), "urgency: newly required"),
    ],
)
def test_breaking_changes_are_detected(edit, expected):
    problems = schemas.breaking_changes(BASE, _changed(edit))
    assert any(p.startswith(expected) for p in problems), problems


def test_adding_an_optional_field_is_compatible():
    new = _changed(lambda s: s["properties"].__setitem__("note", {"type": "string"}))
    assert schemas.breaking_changes(BASE, new) == []


def test_nested_changes_are_found():
    old = schemas.event_schemas()["org.onewindow.case.received.v1"]
    new = copy.deepcopy(old)
    new["$defs"]["Location"]["properties"].pop("division_code")
    assert "location.division_code: removed" in schemas.breaking_changes(old, new)
