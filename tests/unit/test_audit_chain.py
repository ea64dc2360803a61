"""The audit hash chain (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from services.audit.domain import TraceRecord, chain_hash, first_broken


def _chain(n: int = 4):
    out, prev = [], None
    for i in range(1, n + 1):
        r = TraceRecord("case-1", i, f"e{i}", "/src", "t", datetime(2026, 1, 1, tzinfo=UTC), "topic", 0, i, None,
                        {"i": i, "text": "受理"})
        h = chain_hash(prev, r)
        out.append((r, prev, h))
        prev = h
    return out


def test_intact_chain_verifies():
    assert first_broken(_chain()) is None


def test_edited_data_is_caught_at_its_record():
    chain = _chain()
    r, prev, h = chain[2]
    chain[2] = (replace(r, data={"i": 3, "text": "篡改"}), prev, h)
    assert first_broken(chain) == 3


def test_removed_record_is_caught():
    chain = _chain()
    del chain[1]
    assert first_broken(chain) == 3


def test_rehashed_record_breaks_the_next_link():
    chain = _chain()
    r, prev, _h = chain[1]
    forged = replace(r, data={"forged": True})
    chain[1] = (forged, prev, chain_hash(prev, forged))
    assert first_broken(chain) == 3


def test_time_zone_of_the_same_instant_does_not_change_the_hash():
    r = _chain(1)[0][0]
    same_instant = replace(r, time=r.time.astimezone(timezone(timedelta(hours=8))))
    assert chain_hash(None, r) == chain_hash(None, same_instant)


def test_canonical_form_is_sorted_compact_json_of_every_field():
    """The hashed bytes are exactly json.dumps(sort_keys, compact) of the fields: a verifier in any
    language can recompute them, and the hand-written fast form cannot drift from that definition."""
    import json

    r = TraceRecord("case-\"1\"", 7, "e7", "/src\\\n\x01\u2028", "org.x.v1", datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
                    "feedback.police", 3, 99, "0af7651916cd43dd8448eb211c80319c",
                    {"z": [1, 2.5, None], "a": {"b": "受理"}, "t": True})
    expected = json.dumps(
        {"case_id": r.case_id, "seq": 7, "event_id": "e7", "source": r.source, "type": "org.x.v1",
         "time": "2026-01-01T00:00:00+00:00", "topic": "feedback.police", "partition": 3, "kafka_offset": 99,
         "trace_id": r.trace_id, "data": r.data},
        sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert r.canonical() == expected
    assert r.canonical(r.data_json()) == expected
    assert chain_hash(None, r, r.data_json()) == chain_hash(None, r)


def test_verification_does_not_depend_on_the_database_number_formatting():
    import json

    honest = TraceRecord("case-2", 1, "e1", "/src", "t", datetime(2026, 1, 1, tzinfo=UTC), "topic", 0, 1, None,
                         {"amount": 1e16, "rate": 0.1})
    text = honest.data_json()  # what was hashed and stored: {"amount":1e+16,...}
    h = chain_hash(None, honest, text)
    # jsonb gives the value back in its own form: 10000000000000000
    as_queried = replace(honest, data=json.loads('{"amount": 10000000000000000, "rate": 0.1}'), hashed_text=text)
    assert first_broken([(as_queried, None, h)]) is None
    edited = replace(as_queried, data={"amount": 2e16, "rate": 0.1})  # the queried value changed, the text not
    assert first_broken([(edited, None, h)]) == 1
    rewritten = replace(as_queried, hashed_text=text.replace("1e+16", "2e+16"))
    assert first_broken([(rewritten, None, h)]) == 1


def test_nan_infinity_and_nul_are_refused_at_the_edge():
    import pytest

    from shared.cloudevents import EnvelopeError, decode
    from shared.contracts.submissions import CaseSubmission

    headers = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/departments/police"),
               ("ce_type", b"org.onewindow.dispatch.progress.v1"), ("ce_time", b"2026-12-01T00:00:00+00:00"),
               ("ce_subject", b"k")]
    for value in (b'{"x": NaN}', b'{"x": -Infinity}', b'{"note": "a\\u0000b"}'):
        with pytest.raises(EnvelopeError):
            decode(b"k", value, headers)
    assert decode(b"k", b'{"note": "a\\\\u0000b"}', headers).data == {"note": "a\\u0000b"}  # an escaped backslash
    body = {"channel": "hotline", "description": "有人打架", "location": {"division_code": "339901001001"}}
    CaseSubmission.model_validate(body)
    for bad in ({**body, "description": "有人\x00打架"},
                {**body, "location": {**body["location"], "coordinates": {"lat": float("nan"), "lon": 120.1}}}):
        with pytest.raises(ValueError, match="NUL characters and NaN"):
            CaseSubmission.model_validate(bad)
