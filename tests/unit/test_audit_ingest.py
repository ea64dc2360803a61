"""Audit's batch ingest in Python (pure: no broker, no database): a batch chains and folds exactly as
the same events one at a time, and every record it makes verifies like a stored one."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

from services.audit import domain
from services.audit.handlers import trace_batch
from shared import topics
from shared.cloudevents import Actor, CloudEvent
from shared.messaging.consumer import Inbound

T0 = datetime(2026, 12, 3, 9, tzinfo=UTC)
P = "org.onewindow."
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _item(n: int, case: str, type_: str, data: dict, topic: str = "dispatch.police", actor: Actor | None = None,
          traceparent: str | None = TRACEPARENT) -> Inbound:
    ev = CloudEvent(id=f"e{n}", source="/services/router", type=P + type_ + ".v1", subject=case,
                    time=(T0 + timedelta(minutes=n)).astimezone(timezone(timedelta(hours=8))), data=data,
                    traceparent=traceparent, actor=actor)
    rec = SimpleNamespace(topic=topic, partition=n % 3, offset=100 + n, timestamp=1_796_000_000_000 + n)
    return Inbound(rec, ev, None)


def _batch() -> list[Inbound]:
    """Several events of one case, interleaved with others, a risk (its own chain, no summary), events
    with and without an actor and a trace, data that orjson and json.dumps write differently."""
    router = Actor.service("/services/router")
    clerk = Actor("clerk-7", "clerk", "339901001")
    received = {"case_number": "339901-20261203-00001", "category": "public_security.violence",
                "location": {"division_code": "339901001002", "lat": 30.27, "lng": 120.15}, "title": "有人打架\n\"急\""}
    return [
        _item(0, "c1", "case.received", received, topic="intake.cases", actor=clerk),
        _item(1, "c2", "case.received", {**received, "case_number": "339901-20261203-00002"}, topic="intake.cases"),
        _item(2, "c1", "case.routed", {"category": "public_security.violence", "risk_colour": "yellow"},
              topic="router.decisions", actor=router),
        _item(3, "r1", "risk.identified", {"risk_id": "r1", "title": "群体性风险", "colour": "orange"},
              topic=topics.RISK_EVENTS, actor=router),
        _item(4, "c1", "case.dispatched", {"dispatch_id": "d1", "unit_id": "police-339901001", "role": "lead",
                                           "location": {"division_code": "339901001002"}}, actor=router),
        _item(5, "c3", "dispatch.progress", {"dispatch_id": "dx", "amount": 1e-05, "big": 2**70, "n": 1e16},
              topic="feedback.police", traceparent=None),
        _item(6, "c1", "supervision.notice", {"dispatch_id": "d1", "colour": "red"}, actor=router),
        _item(7, "c2", "case.merged", {"into_case_id": "c1"}, topic="router.decisions", actor=router),
        _item(8, "r1", "risk.changed", {"risk_id": "r1", "colour": "red"}, topic=topics.RISK_EVENTS),
        _item(9, "c1", "case.escalated", {"dispatch_id": "d1", "to_unit_id": "police-339901"}, actor=router),
    ]


def _as_stored(rows: list[domain.NewRecord]) -> dict[str, list[tuple[domain.TraceRecord, bytes | None, bytes]]]:
    """The records as verification reads them back: the data as the jsonb gives it, the hashed text."""
    chains: dict[str, list] = {}
    for r in rows:
        record = domain.TraceRecord(
            case_id=r.case_id, seq=r.seq, event_id=r.event_id, source=r.source, type=r.type, time=r.time,
            topic=r.topic, partition=r.partition, kafka_offset=r.kafka_offset, trace_id=r.trace_id,
            data=json.loads(r.data), hashed_text=r.data_text, actor=json.loads(r.actor) if r.actor else None)
        chains.setdefault(r.case_id, []).append((record, r.prev_hash, r.hash))
    return chains


def test_a_batch_gives_the_chains_and_summaries_of_the_same_events_one_at_a_time():
    items = _batch()
    heads, stored = {"c3": (4, b"\x07" * 32)}, {"c3": domain.CaseSummary(case_id="c3", events=4, status="dispatched")}

    one_heads, one_stored, one_rows = dict(heads), copy.deepcopy(stored), []
    for item in items:  # as if each came in its own batch: the heads and summaries stored in between
        rows, changed = trace_batch(one_heads, copy.deepcopy(one_stored), [item])
        one_rows += rows
        one_stored.update(copy.deepcopy(changed))

    rows, changed = trace_batch(dict(heads), copy.deepcopy(stored), items)
    assert rows == one_rows
    assert set(changed) == {"c1", "c2", "c3"}, "a risk has a chain but no summary"
    assert {k: asdict(s) for k, s in changed.items()} == {k: asdict(one_stored[k]) for k in changed}

    by_case = _as_stored(rows)
    assert [r.seq for r, _, _ in by_case["c1"]] == [1, 2, 3, 4, 5]
    assert [r.seq for r, _, _ in by_case["r1"]] == [1, 2]
    assert [r.seq for r, _, _ in by_case["c3"]] == [5], "numbering goes on from the stored head"
    assert by_case["c3"][0][1] == b"\x07" * 32
    c1 = changed["c1"]
    assert (c1.events, c1.status, c1.holder_unit_id, c1.overdue, c1.escalations, c1.supervision) == (
        5, "dispatched", "police-339901001", True, 1, "red")
    assert (changed["c2"].merged_into, changed["c3"].events) == ("c1", 5)


def test_every_record_of_a_batch_verifies_and_hashes_as_the_reference_form():
    rows, _ = trace_batch({}, {}, _batch())
    for case_id, chain in _as_stored(rows).items():
        assert domain.first_broken(chain) is None, case_id
        prev = None
        for record, stored_prev, stored_hash in chain:
            # the reference: sha256(prev || json.dumps(sort_keys, compact) of every field, the data as stored)
            fields = {"case_id": record.case_id, "seq": record.seq, "event_id": record.event_id,
                      "source": record.source, "type": record.type, "time": record.time.astimezone(UTC).isoformat(),
                      "topic": record.topic, "partition": record.partition, "kafka_offset": record.kafka_offset,
                      "trace_id": record.trace_id, "data": "@DATA@"}
            if record.actor is not None:
                fields["actor"] = record.actor
            text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            text = text.replace('"@DATA@"', record.hashed_text)
            assert stored_prev == prev and stored_hash == hashlib.sha256((prev or b"") + text.encode()).digest()
            prev = stored_hash
    row = next(r for r in rows if r.case_id == "c3")
    assert row.trace_id is None and row.actor is None
    assert json.loads(row.data_text) == {"dispatch_id": "dx", "amount": 1e-05, "big": 2**70, "n": 1e16}
    assert row.data_text.startswith('{"amount":'), "sorted keys"
    first = rows[0]
    assert first.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert json.loads(first.actor) == {"id": "clerk-7", "role": "clerk", "unit": "339901001"}
    assert first.data == first.data_text and '"title":"有人打架\\n\\"急\\""' in first.data_text
    assert first.broker_time == datetime.fromtimestamp(1_796_000_000, UTC)


def test_an_edited_record_of_a_batch_is_caught():
    rows, _ = trace_batch({}, {}, _batch())
    chain = _as_stored(rows)["c1"]
    record, prev, h = chain[2]
    chain[2] = (replace(record, data={**record.data, "unit_id": "police-339901002"}), prev, h)
    assert domain.first_broken(chain) == 3
    chain = _as_stored(rows)["c1"]
    record, prev, h = chain[1]
    chain[1] = (replace(record, actor={"id": "someone-else", "role": "service"}), prev, h)
    assert domain.first_broken(chain) == 2


def test_canonical_json_is_sorted_and_compact_and_falls_back_for_what_orjson_refuses():
    value = {"b": [1, 2.5, None, True], "a": {"z": "受理", "y": "\x01\u2028"}}
    assert domain.canonical_json(value) == json.dumps(value, sort_keys=True, ensure_ascii=False,
                                                      separators=(",", ":")).encode()
    assert domain.canonical_json({"n": 2**70}) == b'{"n":1180591620717411303424}'
    deep: list = []
    for _ in range(300):
        deep = [deep]
    assert json.loads(domain.canonical_json({"d": deep})) == {"d": deep}
