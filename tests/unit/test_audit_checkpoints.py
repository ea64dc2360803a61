"""The chain of signed checkpoints and what verification finds (pure): deleted, reordered, swapped,
renumbered and forged checkpoints, checkpoints from before chaining, a stale head, missing events,
and append-only triggers missing, disabled or altered."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.audit import domain
from services.audit.domain import Checkpoint, Guard

KEY = b"unit-key"
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def _heads(n: int) -> list[tuple[str, int, bytes]]:
    return [(f"case-{i}", i + 1, bytes([i]) * 32) for i in range(n)]


def _chain(n: int, before: Checkpoint | None = None) -> list[Checkpoint]:
    """n chained checkpoints as the service signs them, stored with ids after `before`'s."""
    out: list[Checkpoint] = []
    previous = before
    for i in range(1, n + 1):
        cp = domain.next_checkpoint(previous, _heads(i), events=10 * i, up_to_id=10 * i,
                                    taken_at=T0 + timedelta(minutes=5 * i), key=KEY, key_id="k1")
        cp = replace(cp, id=(before.id if before else 0) + i)
        out.append(cp)
        previous = cp
    return out


def _legacy(id_: int) -> Checkpoint:
    """A checkpoint from before chaining: the signature covers the digest alone."""
    digest = domain.checkpoint_digest(_heads(id_))
    return Checkpoint(id=id_, taken_at=T0, cases=id_, events=id_, up_to_id=id_, digest=digest,
                      signature=domain.sign(digest, KEY), key_id="k0")


def _kinds(findings) -> list[tuple[str, int | None]]:
    return [(f["kind"], f.get("seq")) for f in findings]


def test_each_checkpoint_signs_its_sequence_number_and_the_previous_signature():
    first, second = _chain(2)
    assert (first.seq, first.prev_signature) == (1, None)
    assert (second.seq, second.prev_signature) == (2, first.signature)
    assert first.signature_valid(KEY) and second.signature_valid(KEY)
    assert not second.signature_valid(b"another key")
    # every signed field counts: renumbered, relinked, moved in time, covering other events
    for altered in (replace(second, seq=3), replace(second, prev_signature="0" * 64),
                    replace(second, taken_at=second.taken_at + timedelta(seconds=1)),
                    replace(second, up_to_id=11), replace(second, events=9), replace(second, cases=7),
                    replace(second, digest=b"\0" * 32), replace(second, key_id="k2")):
        assert not altered.signature_valid(KEY)


def test_the_signed_message_is_sorted_compact_json():
    """Recomputable in any language: the fields as json.dumps(sort_keys, compact)."""
    import json

    cp = _chain(1)[0]
    assert cp.message() == json.dumps(
        {"cases": 1, "digest": cp.digest.hex(), "events": 10, "key_id": "k1", "prev_signature": None, "seq": 1,
         "taken_at": "2026-03-01T08:05:00+00:00", "up_to_id": 10}, sort_keys=True, separators=(",", ":")).encode()


def test_an_intact_chain_of_checkpoints_has_no_findings():
    assert domain.checkpoint_findings(_chain(5), KEY) == []
    assert domain.checkpoint_findings([], KEY) == []


def test_checkpoints_from_before_chaining_stay_verifiable_and_the_first_chained_one_links_to_the_last():
    old = [_legacy(1), _legacy(2)]
    chained = _chain(2, before=old[-1])
    assert chained[0].prev_signature == old[-1].signature and chained[0].seq == 1
    assert domain.checkpoint_findings(old + chained, KEY) == []
    assert domain.checkpoint_findings(old, KEY) == []
    # the last unchained one deleted: the first chained one links to nothing that is there
    assert _kinds(domain.checkpoint_findings(old[:1] + chained, KEY)) == [("checkpoint_link_broken", 1)]
    # a legacy-looking row stored after chained ones
    assert _kinds(domain.checkpoint_findings(old + chained + [_legacy(9)], KEY)) == [("checkpoint_out_of_order", None)]


@pytest.mark.parametrize("deleted, expected", [
    ([1], [("checkpoint_missing", 1)]),
    ([2], [("checkpoint_missing", 2)]),
    ([2, 3], [("checkpoint_missing", 2)]),
    ([1, 3], [("checkpoint_missing", 1), ("checkpoint_missing", 3)]),
])
def test_a_deleted_checkpoint_leaves_a_gap(deleted, expected):
    kept = [cp for cp in _chain(5) if cp.seq not in deleted]
    assert _kinds(domain.checkpoint_findings(kept, KEY)) == expected


def test_the_newest_deleted_leaves_no_gap_but_a_stale_head():
    kept = _chain(5)[:3]
    assert domain.checkpoint_findings(kept, KEY) == []
    newest = domain.newest(kept)
    assert newest.seq == 3
    recorded = newest.taken_at + timedelta(minutes=1)  # the first event after what seq 3 covered
    assert domain.uncovered_finding(newest, recorded, recorded + timedelta(seconds=599), 300) is None
    stale = domain.uncovered_finding(newest, recorded, recorded + timedelta(seconds=601), 300)
    assert stale["kind"] == "checkpoint_stale" and stale["seq"] == 3
    assert stale["detail"].startswith(f"no checkpoint covers events since {recorded.isoformat()}")


def test_events_without_any_checkpoint_are_stale_too_and_nothing_uncovered_is_fine():
    at = T0
    assert domain.uncovered_finding(None, at, at + timedelta(hours=1), 300)["kind"] == "checkpoint_stale"
    assert domain.uncovered_finding(None, at, at + timedelta(minutes=1), 300) is None
    assert domain.uncovered_finding(None, None, at + timedelta(days=9), 300) is None


def test_renumbering_a_later_checkpoint_to_close_a_gap_breaks_its_signature():
    chain = _chain(4)
    forged = [chain[0], replace(chain[2], seq=2), replace(chain[3], seq=3)]
    kinds = _kinds(domain.checkpoint_findings(forged, KEY))
    assert ("checkpoint_forged", 2) in kinds and ("checkpoint_forged", 3) in kinds
    assert ("checkpoint_link_broken", 2) in kinds


def test_swapped_or_reordered_checkpoints_are_stored_out_of_sequence():
    a, b, c, d = _chain(4)
    swapped = [a, replace(c, id=b.id), replace(b, id=c.id), d]  # the rows' contents exchanged
    assert _kinds(domain.checkpoint_findings(swapped, KEY)) == [("checkpoint_out_of_order", 2)]
    moved = [replace(d, id=1), replace(a, id=2), replace(b, id=3), replace(c, id=4)]
    assert [k for k, _ in _kinds(domain.checkpoint_findings(moved, KEY))] == ["checkpoint_out_of_order"] * 3


def test_a_repeated_sequence_number_and_a_foreign_signature_are_reported():
    a, b = _chain(2)
    twice = [a, b, replace(b, id=3)]
    assert ("checkpoint_duplicate", 2) in _kinds(domain.checkpoint_findings(twice, KEY))
    other = domain.next_checkpoint(a, _heads(2), 20, 20, T0, b"someone else's key", "k1")
    kinds = _kinds(domain.checkpoint_findings([a, replace(other, id=2)], KEY))
    assert kinds == [("checkpoint_forged", 2)]


def test_missing_events_and_changed_heads_of_a_checkpoint():
    cp = _chain(3)[2]
    assert domain.missing_events_finding(cp, cp.events) is None
    assert domain.missing_events_finding(cp, cp.events + 2) is None  # more is not a loss
    gone = domain.missing_events_finding(cp, 0)
    assert gone["kind"] == "events_missing" and "covered 30 events" in gone["detail"] and "0 remain" in gone["detail"]
    assert domain.covered_event_gone(cp)["kind"] == "events_missing"
    assert domain.heads_finding(cp, _heads(3)) is None
    assert domain.heads_finding(cp, _heads(2))["kind"] == "checkpoint_heads_changed"


def _guards(**changes: Guard) -> list[Guard]:
    out = {f"{t}/{n}": Guard(t, n, "O", bits, "refuse_change",
                             "\nBEGIN\n    RAISE EXCEPTION 'audit records are append-only (% refused on %)', TG_OP, "
                             "TG_TABLE_NAME;\nEND ")
           for (t, n), bits in domain.APPEND_ONLY_GUARDS.items()}
    out.update(changes)
    return [g for g in out.values() if g is not None]


def test_append_only_triggers_in_place_have_no_findings():
    assert len(domain.APPEND_ONLY_GUARDS) == 6
    assert domain.guard_findings(_guards()) == []
    always = {k: replace(g, enabled="A") for k, g in ((f"{g.table}/{g.trigger}", g) for g in _guards())}
    assert domain.guard_findings(always.values()) == []


def test_missing_disabled_and_altered_triggers_are_reported():
    base = {f"{g.table}/{g.trigger}": g for g in _guards()}
    cases = {
        "events/events_no_truncate": (None, "guard_missing"),
        "events/events_append_only": (replace(base["events/events_append_only"], enabled="D"), "guard_disabled"),
        "checkpoints/checkpoints_append_only": (replace(base["checkpoints/checkpoints_append_only"], enabled="R"),
                                                "guard_disabled"),  # fires only in replication sessions
        "checkpoints/checkpoints_no_truncate": (replace(base["checkpoints/checkpoints_no_truncate"],
                                                        type=domain.ROW_GUARD), "guard_altered"),
        "dead_letters/dead_letters_append_only": (replace(base["dead_letters/dead_letters_append_only"],
                                                          function_source="BEGIN RETURN OLD; END"), "guard_altered"),
        "dead_letters/dead_letters_no_truncate": (replace(base["dead_letters/dead_letters_no_truncate"],
                                                          function="allow_all"), "guard_altered"),
    }
    for name, (guard, kind) in cases.items():
        found = domain.guard_findings(_guards(**{name: guard}))
        table, trigger = name.split("/")
        assert [(f["kind"], f["table"], f["trigger"]) for f in found] == [(kind, table, trigger)], name
