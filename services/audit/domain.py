"""The hash chain of a case's trace, as plain Python."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Iterable


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
        if record.seq != expected_seq or stored_prev != prev or chain_hash(prev, record) != stored_hash:
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
