"""JSON Schemas of the event contracts, and the compatibility rule between two versions of one.

The checked-in schemas (shared/contracts/schemas/*.json) are what departments build against:
`onewindow contracts schemas` regenerates them; a test fails when they differ from the models.
A change is breaking when a field disappears, a field's type changes, or a field becomes
required; a breaking change needs a new event type version (…v2) while the old one stays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.contracts.events import EVENT_MODELS
from shared.contracts.submissions import SUBMISSION_TYPE, CaseSubmission

SCHEMA_DIR = Path(__file__).parent / "schemas"
RELEASED_DIR = SCHEMA_DIR / "released"


def event_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event type's data, by event type."""
    models: dict[str, Any] = {**EVENT_MODELS, SUBMISSION_TYPE: CaseSubmission}
    out = {}
    for event_type, model in sorted(models.items()):
        schema = model.model_json_schema(mode="serialization" if model is not CaseSubmission else "validation")
        schema["$id"] = f"https://onewindow.example/contracts/{event_type}.json"
        schema["x-cloudevents-type"] = event_type
        out[event_type] = schema
    return out


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema as <event type>.json; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in event_schemas().items():
        path = directory / f"{event_type}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return _resolve(schema, schema["$defs"][ref.split("/")[-1]])
    return node


def _types(schema: dict, node: dict) -> set[str]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return set().union(*(_types(schema, n) for n in node["anyOf"]))
    if "enum" in node or "const" in node:
        return {"enum"}
    t = node.get("type")
    if t is None:
        return {"object" if "properties" in node else "any"}
    return set(t) if isinstance(t, list) else {t}


def breaking_changes(old: dict, new: dict, path: str = "") -> list[str]:
    """What a consumer of `old` would trip over in `new`: removed fields, changed types, new requirements."""
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_field in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        old_t, new_t = _types(old, old_field), _types(new, new_props[name])
        if not old_t <= new_t and "any" not in new_t:
            problems.append(f"{where}: type {sorted(old_t)} -> {sorted(new_t)}")
        o, n = _resolve(old, old_field), _resolve(new, new_props[name])
        if "properties" in o and "properties" in n:
            problems += breaking_changes({**o, "$defs": old.get("$defs", {})}, {**n, "$defs": new.get("$defs", {})},
                                         f"{where}.")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path}{name}: newly required")
    return problems
