"""Audit as plain Python: the hash chain of a case's trace, its chain of signed checkpoints and what
verification finds wrong, the case summary folded from the trace, masking of personal data, and the
command centre's figures."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Iterable, NamedTuple

import orjson

from shared import personal
from shared.contracts import status


@dataclass(frozen=True)
class TraceRecord:
    """One event as the audit trace keeps it."""

    case_id: str
    seq: int
    event_id: str
    source: str
    type: str
    time: datetime
    topic: str
    partition: int
    kafka_offset: int
    trace_id: str | None
    data: dict[str, Any]
    hashed_text: str | None = None  # as stored: the exact data text the hash was computed over
    actor: dict[str, str] | None = None  # who did it (CloudEvents actor extension), hashed when present

    def data_json(self) -> str:
        """The event data in the canonical JSON form (sorted keys, no spaces); stored as is."""
        return _dumps(self.data)

    def canonical(self, data_json: str | None = None) -> bytes:
        """The bytes the hash covers: every field as one JSON object with sorted keys and no spaces
        (`record_bytes`), the data as `data_json` when given (the stored text), else re-encoded."""
        data = (data_json if data_json is not None else _dumps(self.data)).encode()
        actor = None if self.actor is None else _dumps(self.actor).encode()
        return record_bytes(self.case_id, self.seq, self.event_id, self.source, self.type,
                            self.time.astimezone(UTC).isoformat(), self.topic, self.partition, self.kafka_offset,
                            self.trace_id, data, actor)


def record_bytes(case_id: str, seq: int, event_id: str, source: str, type_: str, time_utc: str, topic: str,
                 partition: int, kafka_offset: int, trace_id: str | None, data_json: bytes,
                 actor_json: bytes | None) -> bytes:
    """The canonical record the hash covers: json.dumps(sort_keys, compact, ensure_ascii=False) of every
    field, the data (and actor) given as their JSON bytes and embedded unchanged. Written with orjson
    (its string escapes are the standard library's), the keys listed in sorted order."""
    fields: dict[str, Any] = {} if actor_json is None else {"actor": orjson.Fragment(actor_json)}
    fields["case_id"] = case_id
    fields["data"] = orjson.Fragment(data_json)
    fields["event_id"] = event_id
    fields["kafka_offset"] = int(kafka_offset)
    fields["partition"] = int(partition)
    fields["seq"] = int(seq)
    fields["source"] = source
    fields["time"] = time_utc
    fields["topic"] = topic
    fields["trace_id"] = trace_id
    fields["type"] = type_
    return orjson.dumps(fields)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces, UTF-8: how a new record's data (and actor) is stored and
    hashed. orjson, and the standard library for what orjson refuses (integers beyond 64 bits, nesting
    deeper than 254). Numbers may be written otherwise than json.dumps writes them (1e-05 as 0.00001):
    the stored text is what the hash covers and what verification hashes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _dumps(value).encode()


class NewRecord(NamedTuple):
    """A record to append, in the order of the COPY's columns (storage.NEW_RECORD_COLUMNS): `data` and
    `data_text` are the same text (jsonb for queries, text for the hash)."""

    case_id: str
    seq: int
    event_id: str
    source: str
    type: str
    time: datetime
    topic: str
    partition: int
    kafka_offset: int
    trace_id: str | None
    data: str
    prev_hash: bytes | None
    hash: bytes
    broker_time: datetime | None
    data_text: str
    actor: str | None


# One encoder, built once: json.dumps(**options) would build a new encoder for every call.
_dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


def chain_hash(prev_hash: bytes | None, record: TraceRecord, data_json: str | None = None) -> bytes:
    """sha256 over the previous record's hash and this record's content (`data_json`: its data, pre-encoded)."""
    return hashlib.sha256((prev_hash or b"") + record.canonical(data_json)).digest()


_sha256 = hashlib.sha256


def append(heads: dict[str, tuple[int, bytes]], case_id: str, event_id: str, source: str, type_: str, time: datetime,
           topic: str, partition: int, kafka_offset: int, trace_id: str | None, data: Any,
           actor_json: bytes | None, broker_time: datetime | None) -> NewRecord:
    """The next record of a case's chain: seq and hash follow the case's head in `heads` ((seq, hash)
    of its last record, absent for a new case), which moves on to it. The same record and hash as
    `chain_hash` over a TraceRecord with the data as stored."""
    seq, prev = heads.get(case_id, (0, None))
    seq += 1
    data_json = canonical_json(data)
    h = _sha256((prev or b"") + record_bytes(case_id, seq, event_id, source, type_, time.astimezone(UTC).isoformat(),
                                              topic, partition, kafka_offset, trace_id, data_json, actor_json)).digest()
    heads[case_id] = (seq, h)
    text = data_json.decode()
    return NewRecord(case_id, seq, event_id, source, type_, time, topic, partition, kafka_offset, trace_id, text, prev,
                     h, broker_time, text, None if actor_json is None else actor_json.decode())


def first_broken(records: Iterable[tuple[TraceRecord, bytes | None, bytes]]) -> int | None:
    """The seq of the first record whose (prev_hash, hash) does not follow from the chain, else None.

    `records` are (record, stored prev_hash, stored hash) in seq order.
    """
    prev: bytes | None = None
    expected_seq = 1
    for record, stored_prev, stored_hash in records:
        text = record.hashed_text
        # the hash covers the stored text; the queried jsonb must hold the same value (an edit of
        # either breaks the record), whatever number formatting the database gives back
        if text is not None and _loads(text) != record.data:
            return record.seq
        if record.seq != expected_seq or stored_prev != prev or chain_hash(prev, record, text) != stored_hash:
            return record.seq
        prev = stored_hash
        expected_seq += 1
    return None


def checkpoint_digest(heads: Iterable[tuple[str, int, bytes]]) -> bytes:
    """One digest over every case chain's head (case id, last seq, last hash), in case-id order."""
    h = hashlib.sha256()
    for case_id, seq, head in sorted(heads):
        h.update(f"{case_id}|{seq}|".encode() + head)
    return h.digest()


def sign(digest: bytes, key: bytes) -> str:
    """HMAC-SHA256 signature of a checkpoint digest (the key stays outside the database)."""
    return hmac.new(key, digest, hashlib.sha256).hexdigest()


def signature_valid(digest: bytes, signature: str, key: bytes) -> bool:
    """Whether a stored checkpoint's signature matches its digest."""
    return hmac.compare_digest(sign(digest, key), signature)


# --- the chain of checkpoints, and what verification finds ------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint of every chain's head. A chained one (`seq` set) signs its sequence number,
    the previous checkpoint's signature and its own fields; one from before chaining (`seq` None)
    signed its digest alone."""

    id: int
    taken_at: datetime
    cases: int
    events: int
    up_to_id: int
    digest: bytes
    signature: str
    key_id: str
    seq: int | None = None
    prev_signature: str | None = None

    def message(self) -> bytes:
        """The bytes a chained checkpoint's signature covers: its fields as sorted, compact JSON."""
        return _dumps({
            "cases": self.cases, "digest": self.digest.hex(), "events": self.events, "key_id": self.key_id,
            "prev_signature": self.prev_signature, "seq": self.seq,
            "taken_at": self.taken_at.astimezone(UTC).isoformat(), "up_to_id": self.up_to_id,
        }).encode()

    def signature_valid(self, key: bytes) -> bool:
        """Whether the stored signature is ours over what this checkpoint says."""
        if self.seq is None:
            return signature_valid(self.digest, self.signature, key)
        return hmac.compare_digest(hmac.new(key, self.message(), hashlib.sha256).hexdigest(), self.signature)


def next_checkpoint(previous: Checkpoint | None, heads: list[tuple[str, int, bytes]], events: int, up_to_id: int,
                    taken_at: datetime, key: bytes, key_id: str) -> Checkpoint:
    """The signed checkpoint that follows `previous` (the newest chained one, else the newest from before
    chaining, else none): the next sequence number, linked to the previous signature (id is set on insert)."""
    seq = previous.seq + 1 if previous is not None and previous.seq is not None else 1
    unsigned = Checkpoint(id=0, taken_at=taken_at, cases=len(heads), events=events, up_to_id=up_to_id,
                          digest=checkpoint_digest(heads), signature="", key_id=key_id, seq=seq,
                          prev_signature=previous.signature if previous is not None else None)
    return replace(unsigned, signature=hmac.new(key, unsigned.message(), hashlib.sha256).hexdigest())


# {"kind", "detail", and what it concerns: case_id, checkpoint_id, seq, table, trigger}
Finding = dict[str, Any]


def finding(kind: str, detail: str, **about: Any) -> Finding:
    """One thing verification found wrong, as the API and the CLI report it."""
    return {"kind": kind, "detail": detail, **about}


def chain_finding(case_id: str, first_broken_seq: int) -> Finding:
    """A case's chain that no longer follows from its records."""
    return finding("chain_broken", f"case {case_id}: the chain breaks at record {first_broken_seq}",
                   case_id=case_id, seq=first_broken_seq)


def _name(cp: Checkpoint) -> str:
    return f"checkpoint {cp.id}" + (f" (seq {cp.seq})" if cp.seq is not None else " (unchained)")


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def checkpoint_findings(checkpoints: list[Checkpoint], key: bytes) -> list[Finding]:
    """Signatures, order, gaps and links of the stored checkpoints, given in the order they were stored (id).

    A deleted checkpoint leaves a gap in the sequence (and its successor's link points at nothing); a
    reordered or swapped one is stored out of sequence; the first chained checkpoint links to the last
    one from before chaining (or to none). The newest ones deleted leave no gap: see `uncovered_finding`.
    """
    out = [finding("checkpoint_forged", f"{_name(cp)}: the signature is not ours over what it says"
                                        f" (key id {cp.key_id!r})", checkpoint_id=cp.id, seq=cp.seq)
           for cp in checkpoints if not cp.signature_valid(key)]
    chained_seen, last_seq = False, 0
    for cp in checkpoints:
        if cp.seq is None:
            if chained_seen:
                out.append(finding("checkpoint_out_of_order", f"{_name(cp)} is stored after chained ones",
                                   checkpoint_id=cp.id, seq=None))
            continue
        chained_seen = True
        if cp.seq <= last_seq:
            out.append(finding("checkpoint_out_of_order", f"{_name(cp)} is stored after seq {last_seq}",
                               checkpoint_id=cp.id, seq=cp.seq))
        last_seq = max(last_seq, cp.seq)
    by_seq: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if cp.seq is not None:
            if cp.seq in by_seq:
                out.append(finding("checkpoint_duplicate", f"{_name(cp)} repeats the sequence number of"
                                   f" checkpoint {by_seq[cp.seq].id}", checkpoint_id=cp.id, seq=cp.seq))
            by_seq.setdefault(cp.seq, cp)
    if not by_seq:
        return out
    missing = [s for s in range(1, max(by_seq) + 1) if s not in by_seq]
    for first, last in _ranges(missing):
        which = f"seq {first}" if first == last else f"seq {first} to {last}"
        out.append(finding("checkpoint_missing", f"checkpoint {which} is missing (deleted)", seq=first))
    first_chained = next(i for i, cp in enumerate(checkpoints) if cp.seq is not None)
    unchained = checkpoints[:first_chained]  # stored before chaining began (no seq)
    for seq, cp in sorted(by_seq.items()):
        if seq > 1 and seq - 1 not in by_seq:
            continue  # the gap is reported above
        before = by_seq[seq - 1] if seq > 1 else (unchained[-1] if unchained else None)
        if cp.prev_signature != (before.signature if before is not None else None):
            to = _name(before) if before is not None else "no checkpoint"
            out.append(finding("checkpoint_link_broken", f"{_name(cp)} does not link to {to}: the one it"
                               " followed is gone or was replaced", checkpoint_id=cp.id, seq=seq))
    return out


def newest(genuine: list[Checkpoint]) -> Checkpoint | None:
    """The checkpoint covering the most events among those given (the ones whose signature is ours)."""
    return max(genuine, key=lambda cp: (cp.up_to_id, cp.id)) if genuine else None


def heads_finding(cp: Checkpoint, heads: list[tuple[str, int, bytes]]) -> Finding | None:
    """A checkpoint whose covered chains' heads are no longer what it signed (a rewritten chain)."""
    if checkpoint_digest(heads) == cp.digest:
        return None
    return finding("checkpoint_heads_changed", f"{_name(cp)}: the chains' heads up to event {cp.up_to_id}"
                   " are no longer those it signed", checkpoint_id=cp.id, seq=cp.seq)


def missing_events_finding(cp: Checkpoint, remaining: int) -> Finding | None:
    """Events a checkpoint covered that are gone (deleted or truncated behind the triggers' back)."""
    if remaining >= cp.events:
        return None
    return finding("events_missing", f"{_name(cp)} covered {cp.events} events up to event {cp.up_to_id};"
                   f" {remaining} remain", checkpoint_id=cp.id, seq=cp.seq)


def covered_event_gone(cp: Checkpoint) -> Finding:
    """The last event a checkpoint covered is gone (deleted or truncated behind the triggers' back)."""
    return finding("events_missing", f"{_name(cp)} covered events up to event {cp.up_to_id}, which is gone",
                   checkpoint_id=cp.id, seq=cp.seq)


def uncovered_finding(newest: Checkpoint | None, first_uncovered_at: datetime | None, now: datetime,
                      checkpoint_seconds: float) -> Finding | None:
    """Events no checkpoint has covered for more than two checkpoint intervals: checkpoints stopped, or
    the newest ones were deleted. `first_uncovered_at`: when the oldest event after `newest` was recorded."""
    if first_uncovered_at is None or now - first_uncovered_at <= timedelta(seconds=2 * checkpoint_seconds):
        return None
    after = f"after event {newest.up_to_id} ({_name(newest)})" if newest is not None else "at all"
    return finding("checkpoint_stale", f"no checkpoint covers events since {first_uncovered_at.isoformat()}"
                   f" (none {after}; one is signed every {checkpoint_seconds:g} s)",
                   checkpoint_id=newest.id if newest else None, seq=newest.seq if newest else None)


# The triggers that keep the trace append-only (migrations 0001, 0002, 0007): (table, trigger) -> the
# pg_trigger.tgtype bits it must have (1 row, 2 before, 8 delete, 16 update, 32 truncate).
ROW_GUARD, TRUNCATE_GUARD = 1 | 2 | 8 | 16, 2 | 32
APPEND_ONLY_GUARDS = {
    (table, f"{table}_{name}"): bits for table in ("events", "checkpoints", "dead_letters")
    for name, bits in (("append_only", ROW_GUARD), ("no_truncate", TRUNCATE_GUARD))
}
# The body of refuse_change() as migration 0001 wrote it (whitespace aside): a guard calling anything
# else, or a function rewritten to let changes through, is no guard.
REFUSE_CHANGE = "BEGIN RAISE EXCEPTION 'audit records are append-only (% refused on %)', TG_OP, TG_TABLE_NAME; END"


@dataclass(frozen=True)
class Guard:
    """An append-only trigger as the catalogue shows it."""

    table: str
    trigger: str
    enabled: str  # pg_trigger.tgenabled: O (fires), A (always), D (disabled), R (replication sessions only)
    type: int
    function: str
    function_source: str


def guard_findings(guards: Iterable[Guard]) -> list[Finding]:
    """Append-only triggers that are missing, disabled, or no longer refuse what they must."""
    found = {(g.table, g.trigger): g for g in guards}
    out = []
    for (table, trigger), bits in APPEND_ONLY_GUARDS.items():
        g = found.get((table, trigger))
        about = {"table": table, "trigger": trigger}
        if g is None:
            out.append(finding("guard_missing", f"trigger {trigger} on {table} is missing", **about))
        elif g.enabled not in ("O", "A"):
            out.append(finding("guard_disabled", f"trigger {trigger} on {table} is disabled"
                               f" (tgenabled {g.enabled!r})", **about))
        elif g.type != bits or g.function != "refuse_change" or " ".join(g.function_source.split()) != REFUSE_CHANGE:
            out.append(finding("guard_altered", f"trigger {trigger} on {table} no longer refuses what it must"
                               f" (type {g.type}, function {g.function})", **about))
    return out


# --- the case summary: who holds each case now, in what state, and whether it is late ------------

# A case's status as its summary tells it: the shared vocabulary (the API's status filter takes these).
CaseStatus = status.CaseStatus
CLOSING_STATUSES = status.FINISHED


@dataclass
class CaseSummary:
    """What the trace says about a case now: a projection folded from its events, for search.

    `holder_unit_id` is the unit leading the case (None while it sits with the router, e.g. after a
    return, in the manual queue or once closed); `supervision` is the worst clock colour of the
    current lead dispatch (white, yellow, red); `overdue` is true while that dispatch is red.
    """

    case_id: str
    case_number: str | None = None
    division: str | None = None
    category: str | None = None
    risk_colour: str | None = None
    status: CaseStatus = CaseStatus.RECEIVED
    holder_unit_id: str | None = None
    holder_since: datetime | None = None
    lead_dispatch_id: str | None = None
    units: list[str] | None = None
    supervision: str = "white"
    overdue: bool = False
    escalations: int = 0
    returns: int = 0
    mediation_status: str | None = None
    opened_at: datetime | None = None
    last_event_at: datetime | None = None
    last_type: str | None = None
    events: int = 0
    merged_into: str | None = None  # 并单: the case this one follows


_COLOUR_RANK = {"white": 0, "yellow": 1, "red": 2}
_P = "org.onewindow."


def fold(summary: CaseSummary, event_type: str, data: dict[str, Any], at: datetime) -> CaseSummary:
    """Apply one event to a case's summary (in place, and returned). The status, lead dispatch and
    holder follow the shared projection (shared.contracts.status); the rest is audit's own."""
    s = summary
    s.events += 1
    s.last_event_at = at if s.last_event_at is None else max(s.last_event_at, at)
    s.last_type = event_type
    s.case_number = data.get("case_number") or s.case_number
    standing = status.project(status.Standing(CaseStatus(s.status), s.lead_dispatch_id, s.holder_unit_id,
                                              s.holder_since), event_type, data, at)
    if standing.lead_dispatch_id != s.lead_dispatch_id or standing.status in CLOSING_STATUSES \
            or standing.status is CaseStatus.RESOLVED:
        s.supervision, s.overdue = "white", False  # a new lead's clocks start white; finished ones stop
    s.status, s.lead_dispatch_id = standing.status, standing.lead_dispatch_id
    s.holder_unit_id, s.holder_since = standing.holder_unit_id, standing.holder_since
    lead = data.get("dispatch_id") is not None and str(data.get("dispatch_id")) == s.lead_dispatch_id
    match event_type.removeprefix(_P):
        case "case.received.v1":
            s.division = (data.get("location") or {}).get("division_code") or s.division
            s.category = data.get("category") or s.category
            s.opened_at = at
        case "court.referral.v1":
            s.division = data.get("division_code") or s.division
            s.opened_at = s.opened_at or at
        case "case.routed.v1":
            s.category = data.get("category") or s.category
            s.risk_colour = data.get("risk_colour") or s.risk_colour
        case "case.dispatched.v1":
            s.units = sorted({*(s.units or []), data["unit_id"]}) if data.get("unit_id") else s.units
            s.division = (data.get("location") or {}).get("division_code") or s.division
            s.category = data.get("category") or s.category
            s.risk_colour = data.get("risk_colour") or s.risk_colour
        case "dispatch.returned.v1":
            s.returns += 1
        case "supervision.notice.v1" if lead and s.status not in (CaseStatus.RESOLVED, *CLOSING_STATUSES):
            colour = data.get("colour", "white")
            if _COLOUR_RANK.get(colour, 0) > _COLOUR_RANK[s.supervision]:
                s.supervision = colour
            s.overdue = s.overdue or colour == "red"
        case "case.escalated.v1":
            s.escalations += 1
        case "mediation.transitioned.v1":
            s.mediation_status = data.get("to_status")
        case "case.merged.v1":
            s.merged_into = str(data.get("into_case_id") or "") or None
    return s


# --- personal data in the trace, masked for roles that may not see it ------------------------------

_PLACE_KEYS = {"address", "grid_id"}
_COORDINATE_KEYS = {"lat", "lng"}
# Free text written by people (citizens, clerks, units, mediators): where personal data turns up.
# Identifiers (case numbers, uuids, unit ids, times) are left alone: a digit run in them is not a phone.
_TEXT_KEYS = {"title", "description", "note", "summary", "reason", "outcome", "agreement", "errors"}


mask_text = personal.mask_text  # free text, as every service masks it


GRID_KEYS = frozenset({"grid_id"})  # a grid id names a 网格, not a person: operators see it whole


def mask_personal(value: Any, key: str | None = None, in_text: bool = False, keep: frozenset[str] = frozenset()) -> Any:
    """A copy of event data with personal data masked: numbers in free text, street addresses and grid
    ids hidden (except the place keys in `keep`), coordinates rounded to about a kilometre. Division
    codes, units and ids stay."""
    if isinstance(value, dict):
        return {k: mask_personal(v, k, in_text or k in _TEXT_KEYS, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal(v, key, in_text, keep) for v in value]
    if key in _PLACE_KEYS and key not in keep and isinstance(value, str):
        return value[:2] + "…" if value else value
    if key in _COORDINATE_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(value, 2)
    if in_text and isinstance(value, str):
        return mask_text(value)
    return value


# --- command-centre figures --------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rates from the counts the metrics query returns (a rate is None where nothing was due)."""
    return [{
        "key": r["key"], "period": r["period"].date().isoformat(), "dispatches": r["dispatches"],
        "acknowledged_on_time_rate": _rate(r["acknowledged_on_time"], r["acknowledge_due"]),
        "handled_on_time_rate": _rate(r["handled_on_time"], r["handle_due"]),
        "satisfaction_rate": _rate(r["satisfied"], r["callbacks"]),
        "mediation_success_rate": _rate(r["mediation_agreed"], r["mediation_finished"]),
        "returns": r["returns"], "escalations": r["escalations"],
    } for r in rows]


def ranking(figures_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Units (or towns, counties) ranked within each period by handled-on-time rate (及时处置率), then
    satisfaction, then fewest returns; those with nothing due are not ranked."""
    ranked = sorted((f for f in figures_ if f["handled_on_time_rate"] is not None),
                    key=lambda f: (f["period"], -f["handled_on_time_rate"], -(f["satisfaction_rate"] or 0),
                                   f["returns"], f["key"]))
    out, rank, period = [], 0, None
    for f in ranked:
        rank = 1 if f["period"] != period else rank + 1
        period = f["period"]
        out.append({"rank": rank, "key": f["key"], "period": f["period"],
                    "handled_on_time_rate": f["handled_on_time_rate"], "satisfaction_rate": f["satisfaction_rate"]})
    return out


def division_overview(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The map's figures per division: open, overdue and high-risk cases, and the worst risk there
    (red if any open case is red, orange if any is orange or red, else green)."""
    return [{"code": r["code"], "open": r["open"], "overdue": r["overdue"], "high_risk": r["high_risk"],
             "risk": "red" if r["red_risk"] else "orange" if r["high_risk"] else "green"} for r in rows]


def daily_series(rows: list[dict[str, Any]], first: date, last: date) -> dict[str, Any]:
    """Counts per day as chart series: every day from `first` to `last` (inclusive, none missing),
    and for each flow (received, closed) one list of counts per key, aligned with the days."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, dict[str, list[int]]] = {"received": {}, "closed": {}}
    for r in rows:
        if r["day"] not in index:
            continue
        counts = series[r["flow"]].setdefault(r["key"], [0] * len(days))
        counts[index[r["day"]]] += r["cases"]
    return {"days": [d.isoformat() for d in days], **series}
