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

    def canonical(self) -> bytes:
        """The bytes the hash covers: every field, in a fixed JSON form."""
        return json.dumps(
            {
                "case_id": self.case_id,
                "seq": self.seq,
                "event_id": self.event_id,
                "source": self.source,
                "type": self.type,
                "time": self.time.astimezone(UTC).isoformat(),
                "topic": self.topic,
                "partition": self.partition,
                "kafka_offset": self.kafka_offset,
                "trace_id": self.trace_id,
                "data": self.data,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()


def chain_hash(prev_hash: bytes | None, record: TraceRecord) -> bytes:
    """sha256 over the previous record's hash and this record's content."""
    return hashlib.sha256((prev_hash or b"") + record.canonical()).digest()


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
