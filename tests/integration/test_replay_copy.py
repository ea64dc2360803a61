"""`replay copy` on a real broker, record by record: to a file (the lines `LogRecord.to_json` defines,
read back by `LogRecord.from_json`) and to a sandbox topic (key, value, headers and timestamp
unchanged, each record in the partition the producer's default partitioner gives its key), filters
applied to the client's own records."""

from __future__ import annotations

import json
import secrets

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.replay.copy import Filters, copy, json_line
from shared import topics
from shared.messaging.log import LogRecord, Range, read, reader, resolve

HEADERS = [("ce_type", b"org.onewindow.dispatch.progress.v1"), ("ce_id", b"e"), ("note", "民警\n\"到场\"".encode())]


async def _produce(bootstrap: str, topic: str, partitions: int) -> list[tuple]:
    await topics.ensure_topics(bootstrap, partitions, [topic])
    sent = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(60):
            key = None if i == 7 else f"case-{i % 9}".encode()
            value = b"\xff\xfe not UTF-8" if i == 11 else json.dumps({"i": i, "note": "进展"}, ensure_ascii=False).encode()
            headers = [*HEADERS, ("ce_type", b"org.onewindow.case.closed.v1")] if i % 5 == 0 else list(HEADERS)
            if i == 13:
                headers.append(("raw", b"\x80\x81"))
            await producer.send_and_wait(topic, value, key=key, headers=headers, timestamp_ms=1_796_000_000_000 + i,
                                         partition=i % partitions)
            sent.append((key, value, headers, 1_796_000_000_000 + i))
    finally:
        await producer.stop()
    return sent


async def _read_all(bootstrap: str, topic: str) -> list:
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        rng = await resolve(consumer, Range([topic]))
        return [r async for batch in read(consumer, rng) for r in batch]
    finally:
        await consumer.stop()


async def test_copy_to_a_file_and_to_a_sandbox_keeps_every_record_as_it_was(kafka_bootstrap, tmp_path):
    topic = f"test.replay.{secrets.token_hex(3)}"
    sent = await _produce(kafka_bootstrap, topic, 3)
    source = await _read_all(kafka_bootstrap, topic)
    assert len(source) == len(sent)

    out = tmp_path / "copy.jsonl"
    result = await copy(kafka_bootstrap, Range([topic]), Filters(), to_file=out)
    assert result.written == len(sent)
    lines = out.read_bytes().splitlines(keepends=True)
    by_position = {(r.topic, r.partition, r.offset): r for r in source}
    for line in lines:
        back = LogRecord.from_json(line.decode())
        original = by_position[(back.topic, back.partition, back.offset)]
        assert back == original, "key, value, headers, timestamp and position as they were"
        assert json.loads(line) == json.loads(original.to_json()) and line == json_line(original)
    assert {json.loads(line)["value"] == {"b64": "//4gbm90IFVURi04"} for line in lines} == {True, False}

    prefix = f"sandbox.{secrets.token_hex(3)}."
    result = await copy(kafka_bootstrap, Range([topic]), Filters(), to_prefix=prefix)
    assert result.written == len(sent) and result.targets == (prefix + topic,)
    copied = await _read_all(kafka_bootstrap, prefix + topic)
    key_of = lambda r: (r.key, r.value, r.headers, r.timestamp)  # noqa: E731
    assert sorted(map(key_of, copied), key=repr) == sorted(map(key_of, source), key=repr)
    for r in copied:
        if r.key is not None:
            assert r.partition == DefaultPartitioner()(r.key, [0, 1, 2], [0, 1, 2]), "a case stays in one partition"
    for key in {r.key for r in copied if r.key is not None}:  # in order per key (each key is in one source partition)
        assert [r.value for r in copied if r.key == key] == [r.value for r in sorted(
            (s for s in source if s.key == key), key=lambda s: s.timestamp)]

    closed = f"sandbox.{secrets.token_hex(3)}."
    result = await copy(kafka_bootstrap, Range([topic]), Filters(event_types=frozenset({
        "org.onewindow.case.closed.v1"}), case_ids=frozenset({"case-0", "case-5"})), to_prefix=closed)
    kept = await _read_all(kafka_bootstrap, closed + topic)
    assert result.kept == result.written == len(kept) == 4  # i = 0, 5, 45 (case-0), 50 (case-5): the last ce_type
    assert {r.key for r in kept} == {b"case-0", b"case-5"}
    assert sorted(r.timestamp - 1_796_000_000_000 for r in kept) == [0, 5, 45, 50]
    assert [TopicPartition(r.topic, r.partition) for r in kept]  # written where the partitioner put them
