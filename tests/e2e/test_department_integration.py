"""A department integrated by clients that are not ours (kcat, librdkafka) — the guide's own examples,
refused feedback explained on the department's topic, and CloudEvents SDK conformance of every event."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Producer

from shared import topics
from shared.cloudevents import decode
from shared.contracts import schemas
from tests.conftest import auth, unique
from tests.e2e.conftest import FOREIGN_UNIT

pytestmark = pytest.mark.e2e
GUIDE = Path(__file__).parents[2] / "docs" / "integration.md"


def _example(name: str) -> str:
    blocks = re.findall(r"```(?:bash|python)\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.startswith(f"# example: {name}\n"))


def _foreign_case(stack, text: str) -> str:
    # the hotline clerk names the matter: these tests are about the department's loop, not triage
    r = stack.submit({"channel": "hotline", "description": unique(text), "category": "public_security.violence.fight",
                      "location": {"division_code": "339902004002"}})
    assert r.status_code == 202
    return r.json()["case_id"]


def _dispatch_of(stack, case_id: str) -> dict:
    events = stack.wait_timeline(case_id, "org.onewindow.case.dispatched.v1")
    d = events[-1]["data"]
    assert d["unit_id"] == FOREIGN_UNIT
    return d


def _newer_librdkafka(tmp: Path) -> str:
    """A directory holding confluent-kafka's bundled librdkafka as librdkafka.so.1: Debian's kcat links
    librdkafka 2.0.2, whose ApiVersions request Tansu cannot answer (Apache Kafka can)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    lib = next(libs.glob("librdkafka*.so*"))
    (tmp / "librdkafka.so.1").symlink_to(lib)
    return str(tmp)


def _env(stack, case_id: str, dispatch: dict | None = None) -> dict:
    env = {**os.environ, "BOOTSTRAP": stack.env["KAFKA_BOOTSTRAP_SERVERS"], "CASE_ID": case_id}
    if dispatch:
        env.update(DISPATCH_ID=dispatch["dispatch_id"], UNIT_ID=dispatch["unit_id"])
    return env


def test_the_guides_kcat_and_python_examples_run_the_whole_loop(stack, tmp_path):
    case_id = _foreign_case(stack, "集市上有人打架斗殴")
    dispatch = _dispatch_of(stack, case_id)
    env = {**_env(stack, case_id, dispatch), "LD_LIBRARY_PATH": _newer_librdkafka(tmp_path)}
    kcat = subprocess.run(["bash", "-c", _example("kcat")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert kcat.returncode == 0, kcat.stderr
    assert int(kcat.stdout.strip().splitlines()[0]) >= 1  # kcat saw the dispatch
    stack.wait_timeline(case_id, "org.onewindow.dispatch.accepted.v1")
    py = subprocess.run([sys.executable, "-c", _example("python")], env=_env(stack, case_id),
                        capture_output=True, text=True, timeout=60)
    assert py.returncode == 0, py.stderr
    assert py.stdout.strip() == dispatch["dispatch_id"]
    events = stack.close_case(case_id)
    types = [e["type"] for e in events]
    assert types[3:] == ["org.onewindow.dispatch.accepted.v1", "org.onewindow.dispatch.progress.v1",
                         "org.onewindow.dispatch.resolved.v1", "org.onewindow.case.callback_recorded.v1",
                         "org.onewindow.case.closed.v1"]
    assert {e["source"] for e in events[3:6]} == {"/departments/police/kcat", "/departments/police/example"}


def _send(stack, topic: str, case_id: str, event_type: str, data: dict, event_id: str | None = None) -> str:
    event_id = event_id or str(uuid.uuid4())
    p = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    headers = [("ce_specversion", "1.0"), ("ce_id", event_id), ("ce_source", "/departments/police/test"),
               ("ce_type", event_type), ("ce_time", datetime.now(UTC).isoformat()), ("ce_subject", case_id),
               ("content-type", "application/json")]
    p.produce(topic, key=case_id, value=json.dumps(data, ensure_ascii=False), headers=headers)
    assert p.flush(10) == 0
    return event_id


def test_a_return_reroutes_the_case_to_another_unit(stack):
    case_id = _foreign_case(stack, "有人在菜场门口打人")
    d = _dispatch_of(stack, case_id)
    _send(stack, "feedback.police", case_id, "org.onewindow.dispatch.returned.v1",
          {"case_id": case_id, "dispatch_id": d["dispatch_id"], "unit_id": d["unit_id"], "reason": "辖区有误"})
    events = stack.close_case(case_id)
    routed = [e["data"] for e in events if e["type"] == "org.onewindow.case.routed.v1"]
    assert [(r["reason"], r["unit_id"]) for r in routed] == [("initial", FOREIGN_UNIT), ("return", "police-339902")]


def _rejections(stack, kind: str, feedback_id: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in stack.read_topic(topics.rejection_topic(kind)):
            ev = decode(r.key, r.value, r.headers)
            if ev.data.get("feedback_id") == feedback_id:
                return ev.data
        time.sleep(0.3)
    raise AssertionError(f"no rejection of {feedback_id} on rejections.{kind}")


def test_refused_feedback_is_explained_on_the_departments_topic_and_changes_nothing(stack):
    case_id = _foreign_case(stack, "夜市有人寻衅滋事打架")
    d = _dispatch_of(stack, case_id)
    good = {"case_id": case_id, "dispatch_id": d["dispatch_id"], "unit_id": d["unit_id"]}
    unknown_type = _send(stack, "feedback.police", case_id, "org.onewindow.dispatch.teleported.v1", good)
    missing = _send(stack, "feedback.police", case_id, "org.onewindow.dispatch.accepted.v1",
                    {"case_id": case_id, "dispatch_id": d["dispatch_id"]})
    other_department = _send(stack, "feedback.court", case_id, "org.onewindow.dispatch.accepted.v1", good)
    other_unit = _send(stack, "feedback.police", case_id, "org.onewindow.dispatch.accepted.v1",
                       {**good, "unit_id": "police-339901001"})
    assert "is not published on this topic" in _rejections(stack, "police", unknown_type)["reason"]
    assert "unit_id" in _rejections(stack, "police", missing)["reason"]
    assert "may not publish here" in _rejections(stack, "court", other_department)["reason"]
    assert "does not match" in _rejections(stack, "police", other_unit)["reason"]
    dead = {dict(r.headers).get("ce_id") for r in stack.read_topic("deadletter")}
    assert {x.encode() for x in (unknown_type, missing, other_department, other_unit)} <= dead
    traced = {e["event_id"] for e in stack.timeline(case_id)}
    assert {unknown_type, other_department, other_unit} <= traced, "audit keeps what was sent, refused or not"
    state = __import__("httpx").get(f"{stack.url('router')}/v1/cases/{case_id}",
                                    headers=auth("operator-token-0001")).json()
    assert state["status"] == "dispatched", "refused feedback changed nothing"


def test_every_event_the_system_produced_conforms_to_cloudevents_and_its_schema(stack):
    checked_in = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in schemas.SCHEMA_DIR.glob("*.json")}
    seen_types, count = set(), 0
    for topic in [t for t in topics.ALL_TOPICS if t not in (topics.DEAD_LETTER, topics.SUBMISSIONS)]:
        for r in stack.read_topic(topic):
            headers = dict(r.headers)
            if not headers.get("ce_source", b"").startswith(b"/onewindow/"):
                continue  # written by a department, a test, or a poison-record test
            event = from_binary(KafkaMessage(headers=headers, key=r.key, value=r.value), JSONFormat())
            assert event.get_specversion() == "1.0" and event.get_id() and event.get_source()
            assert event.get_time() is not None and event.get_type() in checked_in
            assert r.key.decode() == event.get_subject() == headers["ce_subject"].decode()
            assert headers.get("traceparent"), "every event carries its trace"
            jsonschema.validate(event.get_data(), checked_in[event.get_type()])
            seen_types.add(event.get_type())
            count += 1
    assert count >= 15
    assert {"org.onewindow.case.received.v1", "org.onewindow.case.routed.v1", "org.onewindow.case.dispatched.v1",
            "org.onewindow.case.closed.v1", "org.onewindow.feedback.rejected.v1"} <= seen_types
