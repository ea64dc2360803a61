"""The event log as data: read a range of topics in batches, records as JSON lines, consumer-group
offsets (lag, reset). Plain aiokafka; used by `onewindow replay` and `onewindow offsets`.

A range is read up to the end offsets seen when reading starts, so a busy topic still gives a
bounded, repeatable read. Records keep their key, headers, partition, offset and timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


class LogError(Exception):
    """A request about the log that cannot be carried out (unknown topic, bad range, live group)."""


@dataclass(frozen=True)
class LogRecord:
    """One Kafka record, detached from the client."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, rec: ConsumerRecord) -> "LogRecord":
        # aiokafka's headers are already a tuple of (str, bytes) pairs: kept as they are (no copy)
        return cls(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.key, rec.value, rec.headers or ())

    def header(self, name: str) -> str | None:
        """A header's value as text (the last one of that name), or None."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    def to_json(self) -> str:
        """One JSON line: text where the bytes are UTF-8, {"b64": ...} where not."""
        try:  # the common case, all UTF-8, without a call per field
            key = self.key.decode() if self.key is not None else None
            value = self.value.decode() if self.value is not None else None
            headers = [[k, v.decode()] for k, v in self.headers]
        except (UnicodeDecodeError, AttributeError):
            key, value = _text(self.key), _text(self.value)
            headers = [[k, _text(v)] for k, v in self.headers]
        return _encode({"topic": self.topic, "partition": self.partition, "offset": self.offset,
                        "timestamp": self.timestamp, "key": key, "headers": headers, "value": value})

    @classmethod
    def from_json(cls, line: str) -> "LogRecord":
        """Parse a line written by `to_json`; ValueError says what is wrong."""
        try:
            d = json.loads(line)
            return cls(str(d["topic"]), int(d.get("partition", 0)), int(d.get("offset", -1)),
                       int(d.get("timestamp", 0)), _bytes(d.get("key")), _bytes(d.get("value")),
                       tuple((str(k), _bytes(v) or b"") for k, v in d.get("headers", [])))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a record line: {type(exc).__name__}: {exc}") from None


_encode = json.JSONEncoder(ensure_ascii=False).encode  # built once, not per line


def _text(b: bytes | None):
    if b is None:
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(b).decode()}


def _bytes(v) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return base64.b64decode(v["b64"], validate=True)
    if isinstance(v, str):
        return v.encode("utf-8")
    raise TypeError(f"expected text, null or {{'b64': ...}}, got {type(v).__name__}")


def millis(t: datetime) -> int:
    """A timezone-aware time as Kafka's milliseconds."""
    if t.tzinfo is None:
        raise LogError(f"{t.isoformat()} has no UTC offset")
    return int(t.timestamp() * 1000)


@dataclass
class Range:
    """What to read: topics, and where to start and stop in each partition."""

    topics: list[str]
    from_offset: int | None = None  # in every partition
    since: datetime | None = None
    until: datetime | None = None  # records with a later timestamp are left out
    starts: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # exclusive

    def validate(self) -> None:
        if self.from_offset is not None and self.since is not None:
            raise LogError("give a start offset or a start time, not both")
        if self.from_offset is not None and self.from_offset < 0:
            raise LogError("the start offset must be >= 0")
        if self.since and self.until and millis(self.since) > millis(self.until):
            raise LogError(f"the range is empty: from {self.since.isoformat()} is after to {self.until.isoformat()}")

    @property
    def total(self) -> int:
        """Records in the range (an upper bound when `until` cuts it)."""
        return sum(max(0, self.ends[tp] - self.starts[tp]) for tp in self.ends)


async def existing_topics(bootstrap: str, **client) -> set[str]:
    """The topics the cluster has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def resolve(consumer: AIOKafkaConsumer, rng: Range) -> Range:
    """Fix the start and end offset of every partition of the range's topics."""
    rng.validate()
    tps = []
    for topic in rng.topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            parts = await _partitions(consumer, topic)
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    begin = await consumer.beginning_offsets(tps)
    end = await end_offsets(consumer, tps)
    starts = dict(begin)
    if rng.from_offset is not None:
        starts = {tp: min(max(rng.from_offset, begin[tp]), end[tp]) for tp in tps}
    elif rng.since is not None:
        starts = await offsets_at(consumer, tps, rng.since, end)
    ends = dict(end)
    if rng.until is not None:
        # records after `until` are filtered while reading; the first offset after it bounds the read
        after = await offsets_at(consumer, tps, datetime.fromtimestamp((millis(rng.until) + 1) / 1000,
                                                                         rng.until.tzinfo), end)
        ends = {tp: min(end[tp], after[tp]) for tp in tps}
    rng.starts, rng.ends = starts, ends
    return rng


async def end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The end offset (high watermark) of each partition.

    Asked twice: ListOffsets, and a fetch's high watermark. Tansu 0.6 answers ListOffsets(latest) too
    low for partitions written in batches that carry headers (every CloudEvent does); its fetch
    responses carry the right high watermark. The larger answer is the end. The consumer's position
    is left anywhere: callers seek before reading.
    """
    reported = await consumer.end_offsets(tps)
    if not set(tps) <= set(consumer.assignment()):  # a group member already holds them: no assign
        consumer.assign(list(set(tps) | set(consumer.assignment())))
    for tp in tps:
        consumer.seek(tp, reported[tp])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while any(consumer.highwater(tp) is None for tp in tps) and loop.time() < deadline:
        await consumer.getmany(*tps, timeout_ms=100, max_records=1)
    return {tp: max(reported[tp], consumer.highwater(tp) or 0) for tp in tps}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise LogError(f"unknown topic {topic!r}")
    return parts


async def offsets_at(consumer: AIOKafkaConsumer, tps: list[TopicPartition], t: datetime,
                     end: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The first offset of each partition with a timestamp at or after `t` (the end offset if none)."""
    found = await consumer.offsets_for_times({tp: millis(t) for tp in tps})
    out = {}
    for tp in tps:
        hit = found.get(tp)
        # Kafka answers None where no record is that late; Tansu answers offset 0 with timestamp -1
        out[tp] = end[tp] if hit is None or hit.timestamp < 0 else hit.offset
    return out


def reader(bootstrap: str, **client) -> AIOKafkaConsumer:
    """A consumer outside any group that reads big batches quickly."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=20, max_partition_fetch_bytes=4 << 20,
                            fetch_max_bytes=32 << 20, **client)


async def read(consumer: AIOKafkaConsumer, rng: Range, max_records: int = 5000, *,
               detach: Callable[[ConsumerRecord], Any] | None = LogRecord.of) -> AsyncIterator[list[LogRecord]]:
    """Batches of the range's records (resolved with `resolve`), each partition in offset order; with
    `detach=None` the client's own records (the same fields, no copy made)."""
    pending = {tp for tp in rng.ends if rng.starts[tp] < rng.ends[tp]}
    if not pending:
        return
    consumer.assign(list(pending))
    for tp in pending:
        consumer.seek(tp, rng.starts[tp])
    until = millis(rng.until) if rng.until else None
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=max_records)
        out = []
        for tp, recs in batches.items():
            end = rng.ends[tp]
            if recs and recs[-1].offset < end and until is None:  # the whole batch is in the range
                out += recs if detach is None else map(detach, recs)
            else:
                out += [r if detach is None else detach(r) for r in recs
                        if r.offset < end and (until is None or r.timestamp <= until)]
            if recs and recs[-1].offset >= end - 1:
                pending.discard(tp)
                consumer.pause(tp)
        if not batches:  # nothing came: a partition whose position passed its end (gaps) is done
            for tp in list(pending):
                if await consumer.position(tp) >= rng.ends[tp]:
                    pending.discard(tp)
        if out:
            yield out


# --- consumer groups ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionLag:
    """A group's position in one partition."""

    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else 0)


async def group_lag(bootstrap: str, group: str, topics: Iterable[str], **client) -> list[PartitionLag]:
    """Committed offset, end offset and lag of a group in every partition of the topics."""
    consumer = reader(bootstrap, **client)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(await _partitions(consumer, t))]
        end = await end_offsets(consumer, tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return [PartitionLag(tp.topic, tp.partition,
                             committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
                             end[tp]) for tp in tps]
    finally:
        await consumer.stop()
        await admin.close()


async def group_members(bootstrap: str, group: str, **client) -> tuple[str, int]:
    """The group's state and number of members, as the coordinator reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
        _error, _gid, state, _ptype, _protocol, members = response.groups[0][:6]
        return state, len(members)
    finally:
        await admin.close()


async def reset_group(bootstrap: str, group: str, topics: list[str], target: str, *, offset: int | None = None,
                      at: datetime | None = None, dry_run: bool = False, join_timeout: float = 60.0,
                      **client) -> dict[TopicPartition, int]:
    """Move a group's committed offsets in the topics to earliest, latest, an offset or a time.

    Refuses (LogError) while another member of the group is alive. Kafka reports members truthfully;
    Tansu 0.6 keeps members listed after they leave, so the check is made by joining the group: a
    joiner given every partition is alone, and only then are offsets committed (as a member, with the
    group's generation). A joiner given less leaves at once and commits nothing.
    """
    if target not in ("earliest", "latest", "offset", "time"):
        raise LogError(f"unknown reset target {target!r}")
    if target == "offset" and (offset is None or offset < 0):
        raise LogError("--to-offset needs an offset >= 0")
    if target == "time" and at is None:
        raise LogError("--to-time needs a time")
    known = await existing_topics(bootstrap, **client)
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise LogError(f"unknown topic(s): {', '.join(unknown)}")
    state, members = await group_members(bootstrap, group, **client)
    member = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                              auto_offset_reset="earliest", fetch_max_wait_ms=20, session_timeout_ms=10_000,
                              heartbeat_interval_ms=1_000, **client)
    await member.start()
    try:
        expected = {TopicPartition(t, p) for t in topics for p in await _partitions(member, t)}
        deadline = asyncio.get_running_loop().time() + join_timeout
        while not member.assignment() and asyncio.get_running_loop().time() < deadline:
            await member.getmany(timeout_ms=200, max_records=1)
        assigned = set(member.assignment())
        if assigned != expected:
            raise LogError(f"group {group!r} has active members (state {state}, {members} listed; this tool was "
                           f"given {len(assigned)} of {len(expected)} partitions): stop them first")
        tps = sorted(expected)
        begin, end = await member.beginning_offsets(tps), await end_offsets(member, tps)
        if target == "earliest":
            new = dict(begin)
        elif target == "latest":
            new = dict(end)
        elif target == "offset":
            new = {tp: min(max(offset, begin[tp]), end[tp]) for tp in tps}
        else:
            new = await offsets_at(member, tps, at, end)
        if not dry_run:
            await member.commit(new)
        return new
    finally:
        await member.stop()
