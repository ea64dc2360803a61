"""Audit as plain Python: the hash chain of a case's trace and its signed checkpoints, the case
summary folded from the trace, masking of personal data, and the command centre's figures."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Iterable, Literal

from shared import personal


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

    def data_json(self) -> str:
        """The event data in the canonical JSON form (sorted keys, no spaces); stored as is."""
        return _dumps(self.data)

    def canonical(self, data_json: str | None = None) -> bytes:
        """The bytes the hash covers: every field as one JSON object with sorted keys and no spaces.

        Written out field by field (same bytes as json.dumps(..., sort_keys=True)) so that the data's
        JSON, the bulk of the work, is encoded once and reused for storage (`data_json`).
        """
        q = _string
        trace_id = "null" if self.trace_id is None else q(self.trace_id)
        return (
            f'{{"case_id":{q(self.case_id)},"data":{data_json if data_json is not None else _dumps(self.data)},'
            f'"event_id":{q(self.event_id)},"kafka_offset":{int(self.kafka_offset)},'
            f'"partition":{int(self.partition)},"seq":{int(self.seq)},"source":{q(self.source)},'
            f'"time":{q(self.time.astimezone(UTC).isoformat())},"topic":{q(self.topic)},'
            f'"trace_id":{trace_id},"type":{q(self.type)}}}'
        ).encode()


# One encoder, built once: json.dumps(**options) would build a new encoder for every call.
_dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads
_string = json.encoder.encode_basestring  # a JSON string literal without \\u-escaping non-ASCII, as above


def chain_hash(prev_hash: bytes | None, record: TraceRecord, data_json: str | None = None) -> bytes:
    """sha256 over the previous record's hash and this record's content (`data_json`: its data, pre-encoded)."""
    return hashlib.sha256((prev_hash or b"") + record.canonical(data_json)).digest()


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


def checkpoint_holds(heads: Iterable[tuple[str, int, bytes]], digest: bytes, signature: str, key: bytes) -> bool:
    """Whether a stored checkpoint still matches the chains' heads it covered, and its signature is ours."""
    return checkpoint_digest(heads) == digest and signature_valid(digest, signature, key)


# --- the case summary: who holds each case now, in what state, and whether it is late ------------

# A case's status as its summary tells it (the API's status filter takes exactly these).
CaseStatus = Literal["received", "court_referral", "routed", "manual_triage", "dispatched", "accepted",
                     "in_progress", "resolved", "returned", "transferred", "reopened", "closed"]
CLOSING_STATUSES: set[CaseStatus] = {"closed"}


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
    status: CaseStatus = "received"
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


_COLOUR_RANK = {"white": 0, "yellow": 1, "red": 2}
_P = "org.onewindow."


def fold(summary: CaseSummary, event_type: str, data: dict[str, Any], at: datetime) -> CaseSummary:
    """Apply one event to a case's summary (in place, and returned). Unknown types only count."""
    s = summary
    s.events += 1
    s.last_event_at = at if s.last_event_at is None else max(s.last_event_at, at)
    s.last_type = event_type
    s.case_number = data.get("case_number") or s.case_number
    lead = data.get("dispatch_id") is not None and data.get("dispatch_id") == s.lead_dispatch_id
    match event_type.removeprefix(_P):
        case "case.received.v1":
            s.division = (data.get("location") or {}).get("division_code") or s.division
            s.category = data.get("category") or s.category
            s.opened_at = at
        case "court.referral.v1":
            s.division = data.get("division_code") or s.division
            s.opened_at = s.opened_at or at
            s.status = "court_referral"
        case "case.routed.v1":
            s.category = data.get("category") or s.category
            s.risk_colour = data.get("risk_colour") or s.risk_colour
            # the decision and its dispatches travel on different topics: a dispatch recorded first
            # already says more than "routed"
            if s.holder_unit_id is None and s.status not in CLOSING_STATUSES:
                s.status = "routed"
        case "case.manual_triage_required.v1":
            s.status, s.holder_unit_id, s.holder_since = "manual_triage", None, at
        case "case.dispatched.v1":
            s.units = sorted({*(s.units or []), data["unit_id"]}) if data.get("unit_id") else s.units
            s.division = (data.get("location") or {}).get("division_code") or s.division
            s.category = data.get("category") or s.category
            s.risk_colour = data.get("risk_colour") or s.risk_colour
            if data.get("role", "lead") == "lead":
                s.lead_dispatch_id, s.holder_unit_id, s.holder_since = data.get("dispatch_id"), data.get("unit_id"), at
                s.status, s.supervision, s.overdue = "dispatched", "white", False
        case "dispatch.accepted.v1" if lead and s.status not in CLOSING_STATUSES | {"resolved"}:
            s.status = "accepted"
        case "dispatch.progress.v1" if lead and s.status not in CLOSING_STATUSES | {"resolved"}:
            s.status = "in_progress"
        case "dispatch.resolved.v1" if lead and s.status not in CLOSING_STATUSES:
            s.status, s.supervision, s.overdue = "resolved", "white", False
        case "dispatch.returned.v1":
            s.returns += 1
            if lead:
                s.status, s.holder_unit_id, s.holder_since, s.lead_dispatch_id = "returned", None, at, None
                s.supervision, s.overdue = "white", False
        case "dispatch.transferred.v1" if lead:
            s.status, s.holder_unit_id, s.holder_since, s.lead_dispatch_id = "transferred", None, at, None
            s.supervision, s.overdue = "white", False
        case "supervision.notice.v1" if lead and s.status not in ("resolved", *CLOSING_STATUSES):
            colour = data.get("colour", "white")
            if _COLOUR_RANK.get(colour, 0) > _COLOUR_RANK[s.supervision]:
                s.supervision = colour
            s.overdue = s.overdue or colour == "red"
        case "case.escalated.v1":
            s.escalations += 1
        case "case.reopened.v1":
            s.status = "reopened"
        case "case.closed.v1":
            s.status, s.holder_unit_id, s.holder_since = "closed", None, at
            s.supervision, s.overdue = "white", False
        case "mediation.transitioned.v1":
            s.mediation_status = data.get("to_status")
    return s


# --- personal data in the trace, masked for roles that may not see it ------------------------------

_PLACE_KEYS = {"address", "grid_id"}
_COORDINATE_KEYS = {"lat", "lng"}
# Free text written by people (citizens, clerks, units, mediators): where personal data turns up.
# Identifiers (case numbers, uuids, unit ids, times) are left alone: a digit run in them is not a phone.
_TEXT_KEYS = {"title", "description", "note", "summary", "reason", "outcome", "agreement", "errors"}


mask_text = personal.mask_text  # free text, as every service masks it


def mask_personal(value: Any, key: str | None = None, in_text: bool = False) -> Any:
    """A copy of event data with personal data masked: numbers in free text, street addresses and grid
    ids hidden, coordinates rounded to about a kilometre. Division codes, units and ids stay."""
    if isinstance(value, dict):
        return {k: mask_personal(v, k, in_text or k in _TEXT_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal(v, key, in_text) for v in value]
    if key in _PLACE_KEYS and isinstance(value, str):
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
