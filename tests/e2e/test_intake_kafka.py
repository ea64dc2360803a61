"""Departmental systems submit over Kafka with a client that is not ours (librdkafka)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from shared.cloudevents import EnvelopeError, decode
from tests.conftest import unique

pytestmark = pytest.mark.e2e
SOURCE = "/departments/police/110-system"


def _publish(stack, ref: str, event_id: str, data: dict, ce_type: str = "org.onewindow.case.submission.v1") -> None:
    producer = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"], "enable.idempotence": False})
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_source", SOURCE.encode()),
        ("ce_type", ce_type.encode()), ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", ref.encode()), ("content-type", b"application/json"),
    ]
    producer.produce("intake.submissions", key=ref.encode(), value=json.dumps(data, ensure_ascii=False).encode(),
                     headers=headers)
    assert producer.flush(10) == 0


def _wait_for(stack, topic: str, predicate, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in stack.read_topic(topic) if predicate(r)]
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"nothing matching on {topic}")


def _received_for(event_id: str):
    def match(record) -> bool:
        try:
            ev = decode(record.key, record.value, record.headers)
        except EnvelopeError:
            return False  # other tests put poison on this topic
        return ev.type == "org.onewindow.case.received.v1" and ev.data.get("submission_ref") == event_id

    return match


def test_a_foreign_client_submits_once_even_when_it_retries(stack):
    ref = f"110-{uuid.uuid4().hex[:12]}"
    first_id, later_id = str(uuid.uuid4()), str(uuid.uuid4())
    data = {"channel": "police_referral", "description": unique("非警务警情：邻里因装修噪音发生纠纷"),
            "location": {"division_code": "339901002003"}, "risk_flags": ["elderly"]}
    _publish(stack, ref, first_id, data)
    _publish(stack, ref, first_id, data)  # the department's retry: same CloudEvent id
    _publish(stack, ref, later_id, {**data, "description": unique("另一起：楼道堆放杂物")})
    _wait_for(stack, "intake.cases", _received_for(later_id))
    firsts = [r for r in stack.read_topic("intake.cases") if _received_for(first_id)(r)]
    assert len({r.value for r in firsts}) == 1
    ev = decode(firsts[0].key, firsts[0].value, firsts[0].headers)
    assert ev.data["channel"] == "police_referral" and ev.data["risk_flags"] == ["elderly"]
    rows = stack.sql("SELECT count(*) AS n FROM intake.cases WHERE idempotency_key = $1", f"kafka:{SOURCE}:{first_id}")
    assert rows[0]["n"] == 1


def test_a_bad_submission_is_rejected_to_its_submitter_and_dead_lettered(stack):
    ref, event_id = f"110-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    _publish(stack, ref, event_id, {"channel": "police_referral", "location": {"division_code": "999999"}})
    rejection = _wait_for(stack, "intake.rejections", lambda r: r.key == event_id.encode())[0]
    ev = decode(rejection.key, rejection.value, rejection.headers)
    assert ev.type == "org.onewindow.submission.rejected.v1"
    assert ev.data["submitter"] == SOURCE
    assert {e["field"] for e in ev.data["errors"]} >= {"description", "location.division_code"}
    dead = _wait_for(stack, "deadletter", lambda r: r.key == ref.encode() and dict(r.headers).get("dlq_consumer") == b"intake")
    assert b"invalid submission" in dict(dead[0].headers)["dlq_error"]
    assert dict(dead[0].headers)["ce_id"] == event_id.encode(), "original headers kept"


def test_a_wrong_event_type_on_the_submissions_topic_is_rejected(stack):
    ref, event_id = f"110-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    _publish(stack, ref, event_id, {"anything": 1}, ce_type="org.example.other.v1")
    rejection = _wait_for(stack, "intake.rejections", lambda r: r.key == event_id.encode())[0]
    assert b"org.onewindow.case.submission.v1" in rejection.value


def test_a_system_may_not_finish_or_refuse_a_case_at_the_window(stack):
    """直接办结 / 不予受理 belong to the clerk taking the report over HTTP, not to a submitting system."""
    ref, event_id = f"110-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    _publish(stack, ref, event_id, {"channel": "police_referral", "description": unique("咨询户籍迁移手续"),
                                    "location": {"division_code": "339901002003"},
                                    "disposition": {"act": "close", "code": "answered", "note": "已答复"}})
    rejection = _wait_for(stack, "intake.rejections", lambda r: r.key == event_id.encode())[0]
    ev = decode(rejection.key, rejection.value, rejection.headers)
    assert [e["field"] for e in ev.data["errors"]] == ["disposition"]
    assert not [r for r in stack.read_topic("intake.cases") if _received_for(event_id)(r)]


def test_a_rejected_submissions_dead_letter_keeps_no_personal_data(stack):
    """Refused submissions carry the reporter's name, phone and address: their dead letters (and audit's
    copy of them) keep the error, the envelope and a sha256 of the value, never the value."""
    name, phone, address = "欧阳修远", f"139{uuid.uuid4().int % 10**8:08d}", "柳岸小区9栋1单元501室"
    ref, event_id = f"110-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    invalid = {"channel": "police_referral", "description": f"{name}报称邻居噪音扰民，电话{phone}",
               "reporter": {"name": name, "phone": phone}, "location": {"division_code": "999999", "address": address}}
    _publish(stack, ref, event_id, invalid)  # an unknown division: rejected by the contract
    # not a CloudEvent at all (no ce_type): refused by the consumer before intake's handler sees it
    poison_ref = f"110-{uuid.uuid4().hex[:12]}"
    poison = json.dumps({"reporter": {"name": name, "phone": phone}}, ensure_ascii=False).encode()
    producer = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"], "enable.idempotence": False})
    producer.produce("intake.submissions", key=poison_ref.encode(), value=poison, headers=[("ce_id", b"p-1")])
    assert producer.flush(10) == 0

    originals = {ref: json.dumps(invalid, ensure_ascii=False).encode(), poison_ref: poison}
    for key, original in originals.items():
        dead = _wait_for(stack, "deadletter", lambda r, k=key: r.key == k.encode())[0]
        everything = dead.key + dead.value + b"".join(k.encode() + (v or b"") for k, v in dead.headers)
        for personal in (name, phone, address, "噪音扰民"):
            assert personal.encode() not in everything, personal
        digest = hashlib.sha256(original).hexdigest()
        assert json.loads(dead.value)["sha256"] == digest
        assert dict(dead.headers)["dlq_value_sha256"] == digest.encode()
        assert dict(dead.headers)["dlq_error"] and dict(dead.headers)["dlq_topic"] == b"intake.submissions"
        # audit keeps the dead letter as it came on the topic: redacted as well
        deadline = time.monotonic() + 30
        while not (rows := stack.sql("SELECT value FROM audit.dead_letters WHERE key = $1", key.encode())):
            assert time.monotonic() < deadline, "audit never recorded the dead letter"
            time.sleep(0.3)
        assert phone.encode() not in rows[0]["value"] and digest.encode() in rows[0]["value"]
