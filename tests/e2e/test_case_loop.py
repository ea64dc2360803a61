"""One window intake → router → department → audit, across real processes, broker and database."""

from __future__ import annotations

import uuid

import pytest

from shared.cloudevents import decode
from tests.conftest import unique

pytestmark = pytest.mark.e2e

EXTERNAL_LOOP = [
    "org.onewindow.case.received.v1",
    "org.onewindow.case.routed.v1",
    "org.onewindow.case.dispatched.v1",
    "org.onewindow.dispatch.accepted.v1",
    "org.onewindow.dispatch.resolved.v1",
    "org.onewindow.case.callback_recorded.v1",
    "org.onewindow.case.closed.v1",
]

CASES = {
    "police": ("hotline", "小区门口有人打架斗殴，有人受伤", "339901001001", "police-339901001"),
    "court": ("window", "对方拒不履行判决，申请强制执行", "339902001001", "court-339902"),
    "petition": ("online_petition", "反映拆迁补偿不到位的问题，要求信访答复", "339901002001", "petition-339901"),
    "mediation": ("grid", "邻里之间因楼上漏水产生纠纷，希望调解", "339901001001", "mediation-339901001001"),
}


def _body(channel: str, text: str, division: str) -> dict:
    return {
        "channel": channel,
        "description": unique(text),
        "location": {"division_code": division, "address": "测试路1号"},
        "reporter": {"name": "王五", "phone": "13912345678"},
    }


def test_every_unit_kind_is_dispatched_handled_and_traced(stack):
    submitted = {}
    for kind, (channel, text, division, _unit) in CASES.items():
        r = stack.submit(_body(channel, text, division))
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["case_number"].startswith(division[:6] + "-")
        submitted[kind] = body["case_id"]

    for kind, case_id in submitted.items():
        if kind == "mediation":
            # the mediation service signs for it and assigns a mediator; its lifecycle is tests/e2e/test_mediation.py
            events = stack.wait_timeline(case_id, "org.onewindow.mediation.transitioned.v1")
            assert [e["type"] for e in events] == [*EXTERNAL_LOOP[:4], "org.onewindow.mediation.transitioned.v1"]
            assert events[3]["source"] == "/onewindow/mediation" and events[4]["data"]["to_status"] == "assigned"
        else:
            events = stack.close_case(case_id)
            assert [e["type"] for e in events] == EXTERNAL_LOOP
        routed = events[1]["data"]
        assert routed["unit_kind"] == kind
        assert routed["unit_id"] == CASES[kind][3]
        assert routed["rule_ids"], "a routing decision names the rules that made it"
        assert events[2]["topic"] == f"dispatch.{kind}"
        trace_ids = {e["trace_id"] for e in events}
        assert len(trace_ids) == 1 and None not in trace_ids, f"one trace per case, got {trace_ids}"
        times = [e["time"] for e in events]
        assert times == sorted(times)

    # Each dispatch is on its unit kind's topic, as a binary-mode CloudEvent keyed by the case id.
    for kind, case_id in submitted.items():
        records = [r for r in stack.read_topic(f"dispatch.{kind}") if r.key == case_id.encode()]
        assert records, f"no dispatch for {kind}"
        ev = decode(records[0].key, records[0].value, records[0].headers)
        assert ev.type == "org.onewindow.case.dispatched.v1" and ev.subject == case_id
        assert "王五" not in records[0].value.decode() and "13912345678" not in records[0].value.decode()


def test_unclassifiable_case_goes_to_the_manual_queue(stack):
    r = stack.submit(_body("citizen_app", "路口的路灯坏了好几天", "339902002001"))
    assert r.status_code == 202
    events = stack.wait_timeline(r.json()["case_id"], "org.onewindow.case.manual_triage_required.v1")
    assert [e["type"] for e in events] == ["org.onewindow.case.received.v1",
                                           "org.onewindow.case.manual_triage_required.v1"]


def test_hash_chain_of_a_case_verifies(stack):
    r = stack.submit(_body("hotline", "有人持刀伤人", "339901002001"))
    case_id = r.json()["case_id"]
    stack.close_case(case_id)
    import httpx

    from tests.conftest import OPERATOR

    v = httpx.get(f"{stack.url('audit')}/v1/cases/{case_id}/verify", headers=OPERATOR).json()
    assert {k: v[k] for k in ("case_id", "records", "chain_intact", "first_broken_seq", "intact", "findings")} == {
        "case_id": case_id, "records": 7, "chain_intact": True, "first_broken_seq": None, "intact": True,
        "findings": []}


def test_poison_record_is_dead_lettered_and_the_next_case_still_flows(stack):
    import asyncio

    from aiokafka import AIOKafkaProducer

    poison_key = str(uuid.uuid4()).encode()

    async def publish_poison():
        p = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], enable_idempotence=False)
        await p.start()
        try:
            await p.send_and_wait("intake.cases", b"{not json", key=poison_key,
                                  headers=[("ce_specversion", b"1.0"), ("x-origin", b"test")])
        finally:
            await p.stop()

    asyncio.run(publish_poison())
    r = stack.submit(_body("hotline", "有人在街上打架", "339901001001"))
    stack.wait_timeline(r.json()["case_id"], "org.onewindow.dispatch.resolved.v1")

    dead = [d for d in stack.read_topic("deadletter") if d.key == poison_key]
    consumers = {dict(d.headers)["dlq_consumer"].decode() for d in dead}
    assert {"router", "audit"} <= consumers  # both consumers of intake.cases dead-lettered it
    for d in dead:
        h = dict(d.headers)
        assert d.value == b"{not json"
        assert h["x-origin"] == b"test", "original headers are kept"
        assert b"missing CloudEvents headers" in h["dlq_error"]
        assert h["dlq_topic"] == b"intake.cases"
    # audit keeps the dead letters for operators
    import time as _t

    for _ in range(50):
        rows = stack.sql("SELECT consumer, error FROM audit.dead_letters WHERE key = $1", poison_key)
        if len(rows) >= 2:
            break
        _t.sleep(0.2)
    assert {r["consumer"] for r in rows} >= {"router", "audit"}
