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
