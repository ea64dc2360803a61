"""AsyncAPI 3 documents, generated from the contracts and the topic registry: one per service and
one per department (its dispatch topic to receive, its feedback topic to send, every message with
an example). `onewindow contracts asyncapi` writes them; the services serve them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import topics
from shared.contracts.events import EVENT_MODELS
from shared.contracts.submissions import SUBMISSION_TYPE, CaseSubmission

VERSION = "1.0.0"
UnitKind = topics.UnitKind
FEEDBACK_TYPES = topics.FEEDBACK_TYPES
DISPATCH_TYPES = topics.DISPATCH_TYPES
# generated from the publishing contract of every topic (shared/topics.py)
TOPIC_MESSAGES: dict[str, list[str]] = {t: list(p.types) for t, p in topics.PUBLISHERS.items()}
# what each service and each department receives and sends: the topology (shared/topics.py)
SERVICES: dict[str, dict[str, list[str]]] = {
    name: {"receive": party.consumes, "send": list(party.produces)} for name, party in topics.SERVICES.items()}
DEPARTMENTS: dict[str, dict[str, list[str]]] = {
    name: {"receive": party.consumes, "send": list(party.produces)} for name, party in topics.DEPARTMENTS.items()}
# mediation is OneWindow's own department: its contract as a department is what the service does
DEPARTMENTS[UnitKind.MEDIATION.value] = {
    "receive": [topics.dispatch_topic(UnitKind.MEDIATION), topics.rejection_topic(UnitKind.MEDIATION)],
    "send": [topics.feedback_topic(UnitKind.MEDIATION)]}
HEADERS = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "unique per source; a retry re-uses it"},
        "ce_source": {"type": "string", "description": "the producing system, e.g. /departments/police/110"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "the case id (= the Kafka key)"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
        "ce_actor": {"type": "string", "pattern": "^[!-~]{1,200}$",
                     "description": "extension: who did what the event records (a person's token subject; "
                                    "for a machine act the service's source)"},
        "ce_actorrole": {"type": "string", "pattern": "^[!-~]{1,200}$",
                         "description": "extension: the actor's role (operator, hotline, mediator, department, "
                                        "service, ...)"},
        "ce_actorunit": {"type": "string", "pattern": "^[!-~]{1,200}$",
                         "description": "extension: the unit or office the actor acts for, when known"},
    },
}
DEAD_LETTER_MESSAGE = {
    "name": "deadletter",
    "title": "Dead letter",
    "summary": "A record a consumer could not process: its original key, value and headers, plus why.",
    "headers": {"type": "object", "properties": {
        "dlq_error": {"type": "string"}, "dlq_consumer": {"type": "string"}, "dlq_topic": {"type": "string"},
        "dlq_partition": {"type": "string"}, "dlq_offset": {"type": "string"}}},
    "payload": {"description": "the poison record's value, byte for byte as it came"},
}
_EXAMPLE_TIME = datetime(2026, 11, 23, 9, 30, tzinfo=UTC).isoformat()
_EXAMPLE_UUID = "3f2b8c1e-5d4a-4e8f-9b7c-2a1d0e6f4c3b"


def _name(event_type: str) -> str:
    return "".join(p.capitalize() for p in event_type.removeprefix("org.onewindow.").split(".")[:-1]).replace(
        "_", "") + event_type.rsplit(".", 1)[-1].upper()


def _model(event_type: str):
    return CaseSubmission if event_type == SUBMISSION_TYPE else EVENT_MODELS[event_type]


def _example(schema: dict, node: dict, name: str = "") -> Any:
    """A valid example value for a JSON Schema node (pydantic's shapes)."""
    if "$ref" in node:
        return _example(schema, schema["components"][node["$ref"].split("/")[-1]], name)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    if "anyOf" in node:
        non_null = [n for n in node["anyOf"] if n.get("type") != "null"]
        return _example(schema, non_null[0], name) if non_null else None
    t = node.get("type")
    if t == "object":
        return {k: _example(schema, v, k) for k, v in node.get("properties", {}).items()}
    if t == "array":
        return [_example(schema, node["items"], name)] if "items" in node else []
    if t == "string":
        fmt = node.get("format")
        if fmt == "uuid":
            return _EXAMPLE_UUID
        if fmt == "date-time":
            return _EXAMPLE_TIME
        if fmt == "date":
            return _EXAMPLE_TIME[:10]
        if "division" in name:
            return "339901001001"
        if node.get("pattern", "").startswith("^[0-9a-f]{64}"):
            return "0" * 64
        return {"unit_id": "police-339901001", "channel": "hotline", "clock": "resolve", "colour": "yellow",
                "role": "lead", "category": "public_security.violence", "case_number": "339901-20261123-00042",
                "phone": "13800138000", "media_type": "image/jpeg"}.get(name, "示例")
    if t == "integer":
        return max(node.get("minimum", 1), 1)
    if t == "number":
        return 0.9
    if t == "boolean":
        return True
    return None


def example(event_type: str) -> dict:
    """A schema-valid example of an event type's data (the one the AsyncAPI documents show)."""
    schema = _model(event_type).model_json_schema(ref_template="#/components/schemas/{model}")
    return _example({"components": schema.pop("$defs", {})}, schema)


def _message(event_type: str, components: dict) -> dict:
    model = _model(event_type)
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components["schemas"].update(schema.pop("$defs", {}))
    payload_name = f"{_name(event_type)}Data"
    components["schemas"][payload_name] = schema
    example = _example({"components": components["schemas"]}, schema)
    return {
        "name": event_type,
        "title": schema.get("title", event_type),
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
        "payload": {"$ref": f"#/components/schemas/{payload_name}"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the case id (submissions: your reference)"}}},
        "examples": [{"name": "example", "headers": {
            "ce_specversion": "1.0", "ce_id": _EXAMPLE_UUID, "ce_source": "/onewindow/router",
            "ce_type": event_type, "ce_time": _EXAMPLE_TIME, "ce_subject": _EXAMPLE_UUID,
            "content-type": "application/json"}, "payload": example}],
    }


def document(title: str, description: str, receive: list[str], send: list[str]) -> dict:
    """An AsyncAPI 3.0 document for a party that receives from and sends to the given topics."""
    components: dict[str, dict] = {"schemas": {"CloudEventHeaders": HEADERS}, "messages": {}}
    channels, operations = {}, {}
    for action, topic_list in (("receive", receive), ("send", send)):
        for topic in topic_list:
            cid = topic.replace(".", "_")
            messages = {}
            if topic == topics.DEAD_LETTER:
                components["messages"].setdefault("DeadLetter", DEAD_LETTER_MESSAGE)
                messages["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
            for event_type in TOPIC_MESSAGES.get(topic, []):
                mname = _name(event_type)
                components["messages"].setdefault(mname, _message(event_type, components))
                messages[mname] = {"$ref": f"#/components/messages/{mname}"}
            channels.setdefault(cid, {"address": topic, "messages": messages,
                                      "bindings": {"kafka": {"topic": topic}}})
            operations[f"{action}_{cid}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in messages],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": VERSION, "description": description},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                              "description": "`onewindow dev`; production brokers use SASL/SCRAM"}},
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def service_document(service: str) -> dict:
    """What one OneWindow service consumes and produces."""
    io = SERVICES[service]
    return document(f"OneWindow {service}", f"Topics the {service} service consumes and produces.",
                    io["receive"], io["send"])


def department_document(kind: UnitKind | str) -> dict:
    """A department's contract: receive dispatches and notices on its dispatch topic, send feedback."""
    kind = UnitKind(kind)
    io = DEPARTMENTS[kind.value]
    return document(
        f"OneWindow for {kind.value} departments",
        f"Receive dispatches (派单) and supervision notices (督办) on {topics.dispatch_topic(kind)}; send "
        f"accept (签收), progress, return (退单), transfer (转办) and resolve (办结) on {topics.feedback_topic(kind)}. "
        f"Refused feedback is explained on {topics.rejection_topic(kind)}. See docs/integration.md.",
        io["receive"], io["send"],
    )


def write_documents(directory: Path) -> list[Path]:
    """Write every service's and every department's document as JSON; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = {f"service-{s}": service_document(s) for s in SERVICES}
    docs.update({f"department-{k.value}": department_document(k) for k in UnitKind})
    paths = []
    for name, doc in docs.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        paths.append(path)
    return paths
