"""Copy part of the log to a sandbox topic or a JSON-lines file, and publish such a file back.

Never writes to a live topic (one the system uses) unless told so explicitly.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from shared import topics
from shared.messaging.log import LogError, LogRecord


@dataclass(frozen=True)
class Filters:
    """Which records of a range to keep. Empty filters keep everything."""

    case_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    division: str | None = None  # a division code prefix

    @property
    def empty(self) -> bool:
        return not (self.case_ids or self.event_types or self.division)

    def keeps(self, rec: LogRecord, division_cases: set[str] | None = None) -> bool:
        """Whether a record (a LogRecord or the client's own) passes; `division_cases` are the cases
        found in the division (first pass)."""
        key = rec.key.decode(errors="replace") if rec.key else None
        if self.case_ids and key not in self.case_ids:
            return False
        if self.event_types and _header(rec, "ce_type") not in self.event_types:
            return False
        if self.division and (division_cases is None or key not in division_cases):
            return False
        return True


def _header(rec: LogRecord, name: str) -> str | None:
    """A header's value as text (the last one of that name), or None: LogRecord.header for a record
    of either kind."""
    found = [v for k, v in rec.headers if k == name]
    return found[-1].decode(errors="replace") if found and found[-1] is not None else None


def division_of(rec: LogRecord) -> str | None:
    """The division code an event names (location.division_code or division_code), if any."""
    try:
        data = json.loads(rec.value) if rec.value else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    location = data.get("location")
    code = location.get("division_code") if isinstance(location, dict) else None
    code = code or data.get("division_code")
    return code if isinstance(code, str) else None


def cases_in_division(records: Iterable[LogRecord], prefix: str) -> set[str]:
    """Case ids (keys) of events that name a division under `prefix`: a case is in a division if any of
    its events says so, so the filter keeps every event of such a case (second pass)."""
    return {rec.key.decode(errors="replace") for rec in records
            if rec.key and (code := division_of(rec)) and code.startswith(prefix)}


def target_topic(source_topic: str, prefix: str | None, topic: str | None, allow_live: bool) -> str:
    """Where a record goes: `topic`, or the prefix + its own topic; refuses live topics unless allowed."""
    target = topic or f"{prefix}{source_topic}"
    if not (prefix or topic):
        raise LogError("give a sandbox prefix (--to-prefix) or a target topic (--to-topic)")
    if target in topics.ALL_TOPICS and not allow_live:
        raise LogError(f"{target!r} is a live topic: the system reads it. Pass --allow-live-topic to write "
                       "there on purpose")
    return target


def _text(b: bytes | None):
    if b is None:
        return None
    try:
        return b.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(b).decode()}


_dumps = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE


def json_line(rec: LogRecord) -> bytes:
    """The record (a LogRecord or the client's own) as a line of a JSON-lines file, newline included:
    the line `LogRecord.to_json` writes, compact UTF-8 made with orjson; text where the bytes are UTF-8,
    {"b64": ...} where not."""
    try:  # the common case, all UTF-8, without a call per field
        return _dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                       "timestamp": rec.timestamp, "key": None if rec.key is None else rec.key.decode(),
                       "headers": [(k, v.decode()) for k, v in rec.headers],
                       "value": None if rec.value is None else rec.value.decode()}, option=_NEWLINE)
    except (UnicodeDecodeError, AttributeError):
        return _dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                       "timestamp": rec.timestamp, "key": _text(rec.key),
                       "headers": [(k, _text(v)) for k, v in rec.headers], "value": _text(rec.value)},
                      option=_NEWLINE)


def read_lines(path: Path) -> Iterator[LogRecord]:
    """Records of a JSON-lines file; LogError names the first bad line."""
    if not path.is_file():
        raise LogError(f"no such file: {path}")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield LogRecord.from_json(line)
            except ValueError as exc:
                raise LogError(f"{path}:{n}: {exc}") from None


def check_file(path: Path, on_record: Callable[[LogRecord], None] | None = None) -> int:
    """Read a whole file before anything is published (a bad line publishes nothing); its size."""
    count = 0
    for rec in read_lines(path):
        count += 1
        if on_record:
            on_record(rec)
    return count


# --- running it -------------------------------------------------------------------------------------

@dataclass
class CopyResult:
    """What a copy or publish did (or, dry, would do)."""

    read: int = 0
    kept: int = 0
    written: int = 0
    targets: tuple[str, ...] = ()


async def ensure_sandbox(bootstrap: str, wanted: dict[str, int], **client) -> None:
    """Create target topics that do not exist yet (as many partitions as their source)."""
    by_partitions: dict[int, list[str]] = {}
    for t, n in wanted.items():
        by_partitions.setdefault(n, []).append(t)
    for n, names in by_partitions.items():
        await topics.ensure_topics(bootstrap, n, names, **client)


async def write_records(bootstrap: str, batches, target_of: Callable[[LogRecord], str],
                        progress: Callable[[int], None] = lambda n: None, **client) -> int:
    """Publish records unchanged (key, value, headers, timestamp), each to the partition the producer's
    default partitioner gives its key (as a `send` would: a case's records stay in one partition). A
    batch of the log is packed into record batches per target partition (no per-record future), all
    sent, then all acknowledged: one flush per batch, not per record."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20,
                                **client)
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    by_key: dict[tuple[str, bytes], int] = {}  # the partitioner hashes in Python: once per key and topic
    written = 0
    try:
        async for batch in batches:
            open_batches, sent = {}, []
            for r in batch:
                topic = target_of(r)
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                if r.key is None:
                    partition = partitioner(None, partitions[topic], partitions[topic])
                elif (partition := by_key.get((topic, r.key))) is None:
                    partition = by_key[(topic, r.key)] = partitioner(r.key, partitions[topic], partitions[topic])
                builder = open_batches.get((topic, partition))
                if builder is None:
                    builder = open_batches[(topic, partition)] = producer.create_batch()
                if builder.append(timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers)) is None:
                    sent.append(await producer.send_batch(builder, topic, partition=partition))  # full
                    builder = open_batches[(topic, partition)] = producer.create_batch()
                    builder.append(timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers))
            for (topic, partition), builder in open_batches.items():
                sent.append(await producer.send_batch(builder, topic, partition=partition))
            for f in sent:
                await f
            written += len(batch)
            progress(len(batch))
    finally:
        await producer.stop()
    return written


async def copy(bootstrap: str, rng, filters: Filters, *, to_file: Path | None = None, to_prefix: str | None = None,
               to_topic: str | None = None, allow_live: bool = False, dry_run: bool = False,
               progress: Callable[[int], None] = lambda n: None, started: Callable[[int], None] = lambda n: None,
               **client) -> CopyResult:
    """Copy a range of the log, filtered, to a file or sandbox topics (validated before anything is read).
    `started` gets the number of records in the range once it is known; `progress` each batch's size."""
    from shared.messaging.log import read, reader, resolve

    rng.validate()  # before any connection: nothing is touched for a bad range
    if (to_file is None) == (to_prefix is None and to_topic is None):
        raise LogError("give exactly one target: --to-file, or --to-prefix / --to-topic")
    if to_file is None:
        for t in rng.topics:
            target_topic(t, to_prefix, to_topic, allow_live)
    elif to_file.exists():
        raise LogError(f"{to_file} exists: choose a new file")
    consumer = reader(bootstrap, **client)
    await consumer.start()
    result = CopyResult()
    try:
        await resolve(consumer, rng)
        started(rng.total * (2 if filters.division else 1))
        division_cases = None
        if filters.division:
            division_cases = set()
            async for batch in read(consumer, rng, detach=None):
                division_cases |= cases_in_division(batch, filters.division)
                progress(len(batch))

        async def kept():
            # the client's records as they come: written or published field by field, never kept
            async for batch in read(consumer, rng, detach=None):
                result.read += len(batch)
                out = batch if filters.empty else [r for r in batch if filters.keeps(r, division_cases)]
                result.kept += len(out)
                if dry_run or not out:
                    progress(len(batch))
                if out and not dry_run:
                    yield out

        if dry_run:
            async for _ in kept():
                pass
        elif to_file is not None:
            with to_file.open("xb") as f:
                # a batch is written by a thread while the next one is read and encoded (one at a time);
                # the file is closed only once its last write is done, however the copy ends
                writing: asyncio.Future | None = None
                try:
                    async for batch in kept():
                        lines = b"".join(map(json_line, batch))
                        if writing is not None:
                            await writing
                        writing = asyncio.ensure_future(asyncio.to_thread(f.write, lines))
                        result.written += len(batch)
                        progress(len(batch))
                finally:
                    if writing is not None:
                        await writing
            result.targets = (str(to_file),)
        else:
            targets = {t: target_topic(t, to_prefix, to_topic, allow_live) for t in rng.topics}
            parts = {}
            for t in rng.topics:
                parts[targets[t]] = max(parts.get(targets[t], 1), len(consumer.partitions_for_topic(t) or {0}))
            await ensure_sandbox(bootstrap, parts, **client)
            result.written = await write_records(bootstrap, kept(), lambda r: targets[r.topic], progress, **client)
            result.targets = tuple(sorted(set(targets.values())))
    finally:
        await consumer.stop()
    return result


async def publish(bootstrap: str, path: Path, *, to_prefix: str | None = None, to_topic: str | None = None,
                  allow_live: bool = False, dry_run: bool = False, batch: int = 2000,
                  progress: Callable[[int], None] = lambda n: None, **client) -> CopyResult:
    """Publish a JSON-lines file (each record to --to-topic, or to the prefix + its own topic). The whole
    file is checked first: a bad line or a live target publishes nothing."""
    sources: dict[str, int] = {}
    count = check_file(path, lambda r: sources.__setitem__(r.topic, max(sources.get(r.topic, 0), r.partition + 1)))
    targets = {t: target_topic(t, to_prefix, to_topic, allow_live) for t in sources}
    result = CopyResult(read=count, kept=count, targets=tuple(sorted(set(targets.values()))))
    if dry_run or not count:
        return result

    async def batches():
        chunk = []
        for rec in read_lines(path):
            chunk.append(rec)
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    parts: dict[str, int] = {}
    for t, n in sources.items():
        parts[targets[t]] = max(parts.get(targets[t], 1), n)
    await ensure_sandbox(bootstrap, parts, **client)
    result.written = await write_records(bootstrap, batches(), lambda r: targets[r.topic], progress, **client)
    return result
