"""The CloudEvents binary-mode envelope and contract validation (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.cloudevents import Actor, CloudEvent, ContractError, EnvelopeError, decode, derive_id
from shared.contracts import DispatchAccepted


def _event() -> CloudEvent:
    data = DispatchAccepted(case_id=uuid.uuid4(), dispatch_id=uuid.uuid4(), unit_id="police-1", note="签收")
    return CloudEvent.of(data, source="/test", event_id="e-1", time=datetime(2026, 11, 23, tzinfo=UTC))


def test_round_trip_keeps_every_attribute():
    ev = _event().with_traceparent("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    back = decode(ev.key(), ev.value(), ev.headers())
    assert back == ev
    assert isinstance(back.model(), DispatchAccepted)
    assert dict(ev.headers())["content-type"] == b"application/json"


@pytest.mark.parametrize("drop", ["ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion"])
def test_missing_required_header_is_an_envelope_error(drop):
    ev = _event()
    headers = [(k, v) for k, v in ev.headers() if k != drop]
    with pytest.raises(EnvelopeError, match=drop):
        decode(ev.key(), ev.value(), headers)


def test_key_must_be_the_case_id():
    ev = _event()
    with pytest.raises(EnvelopeError, match="key"):
        decode(b"other", ev.value(), ev.headers())


@pytest.mark.parametrize("value", [b"{oops", b"[1,2]", b"\xff\xfe"])
def test_value_must_be_a_json_object(value):
    ev = _event()
    with pytest.raises(EnvelopeError):
        decode(ev.key(), value, ev.headers())


def test_time_needs_an_offset():
    ev = _event()
    headers = [(k, b"2026-11-23T08:00:00" if k == "ce_time" else v) for k, v in ev.headers()]
    with pytest.raises(EnvelopeError, match="offset"):
        decode(ev.key(), ev.value(), headers)


def test_unknown_type_and_invalid_data_are_contract_errors():
    ev = _event()
    unknown = CloudEvent(ev.id, ev.source, "org.example.nope.v1", ev.subject, ev.time, ev.data)
    with pytest.raises(ContractError, match="unknown event type"):
        unknown.model()
    broken = CloudEvent(ev.id, ev.source, ev.type, ev.subject, ev.time, {**ev.data, "dispatch_id": "x"})
    with pytest.raises(ContractError, match="dispatch_id"):
        broken.model()
    other_case = CloudEvent(ev.id, ev.source, ev.type, str(uuid.uuid4()), ev.time, ev.data)
    with pytest.raises(ContractError, match="ce_subject"):
        other_case.model()


def test_derived_ids_are_deterministic():
    assert derive_id("a", 1, "x") == derive_id("a", 1, "x")
    assert derive_id("a", 1, "x") != derive_id("a", 1, "y")


def test_the_actor_travels_as_extension_attributes():
    ev = CloudEvent.of(DispatchAccepted(case_id=uuid.uuid4(), dispatch_id=uuid.uuid4(), unit_id="police-339901001"),
                       source="/departments/police/110", event_id="e-1",
                       actor=Actor("officer-0423", "department", "police-339901001"))
    h = dict(ev.headers())
    assert (h["ce_actor"], h["ce_actorrole"], h["ce_actorunit"]) == (b"officer-0423", b"department",
                                                                      b"police-339901001")
    assert decode(ev.key(), ev.value(), ev.headers()).actor == ev.actor
    machine = CloudEvent.of(DispatchAccepted(case_id=uuid.uuid4(), dispatch_id=uuid.uuid4(), unit_id="u"),
                            source="/onewindow/router", event_id="e-2")
    assert machine.actor == Actor("/onewindow/router", "service")


@pytest.mark.parametrize("actor", ["", "张三", "a b", "x" * 201])
def test_an_actor_that_is_not_an_identifier_is_an_envelope_error(actor):
    ev = CloudEvent.of(DispatchAccepted(case_id=uuid.uuid4(), dispatch_id=uuid.uuid4(), unit_id="u"), source="s", event_id="e")
    headers = [(k, v) for k, v in ev.headers() if k != "ce_actor"] + [("ce_actor", actor.encode())]
    with pytest.raises(EnvelopeError, match="ce_actor"):
        decode(ev.key(), ev.value(), headers)
