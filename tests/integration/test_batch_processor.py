"""The consumer plumbing on a real broker and PostgreSQL: inbox, retries, outages, dead letters, commits."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchAccepted
from shared.db import create_pool, migrate
from shared.messaging.broker import create_broker, subscribe_batches
from shared.messaging.consumer import BatchProcessor, Inbound, Reject
from shared.messaging.producer import EventProducer
from shared.settings import Settings
from tests.conftest import read_topic


def _event(case_id: uuid.UUID, note: str, event_id: str | None = None) -> CloudEvent:
    data = DispatchAccepted(case_id=case_id, dispatch_id=uuid.uuid4(), unit_id="u-1", note=note)
    return CloudEvent.of(data, source="/test", event_id=event_id or f"{note}-{uuid.uuid4()}")


async def test_batches_apply_once_retry_outages_and_dead_letter_only_the_bad(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
):
    suffix = secrets.token_hex(3)
    schema, topic, group = f"itest_{suffix}", f"itest.{suffix}", f"itest-{suffix}"
    (tmp_path / "0001_applied.sql").write_text("CREATE TABLE applied (note text PRIMARY KEY, times int NOT NULL);")
    await migrate(database_url, schema, tmp_path)
    await topics.ensure_topics(kafka_bootstrap, 1, [topic, topics.DEAD_LETTER])
    pool = await create_pool(database_url, schema)
    outages = {"flaky": 1}

    async def handle(conn: asyncpg.Connection, items: list[Inbound]):
        for item in items:
            note = item.model.note
            if note == "boom":
                raise ValueError("this event always fails")
            if note == "refused":
                raise Reject("not for this consumer")
            if outages.get(note):
                outages[note] -= 1
                raise ConnectionRefusedError("database went away")  # an outage: retried, never dead-lettered
            await conn.execute(
                "INSERT INTO applied VALUES ($1, 1) ON CONFLICT (note) DO UPDATE SET times = applied.times + 1", note
            )
        return []

    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, database_url=database_url,
                        retry_backoff_seconds=0.05)
    producer = EventProducer(kafka_bootstrap, "itest")
    await producer.start()
    processor = BatchProcessor(name=group, pool=pool, producer=producer, relay=None, handle=handle,
                               retry_attempts=3, retry_backoff_seconds=0.05,
                               enforce_publishers=False)  # a test topic: the mechanics, not the contract
    broker = create_broker(settings, "itest")
    subscribe_batches(broker, processor, [topic], settings)

    case = uuid.uuid4()
    ok1 = _event(case, "ok1")
    sequence = [ok1, _event(case, "boom"), _event(case, "ok2"), _event(case, "flaky"), _event(case, "refused"),
                ok1, _event(case, "ok3")]  # ok1 twice: a redelivered duplicate
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await raw.start()
    try:
        for ev in sequence[:3]:
            await raw.send(topic, ev.value(), key=ev.key(), headers=ev.headers())
        await raw.send(topic, b"\x00not-json", key=str(case).encode(), headers=[("ce_id", b"x")])
        for ev in sequence[3:]:
            await raw.send(topic, ev.value(), key=ev.key(), headers=ev.headers())
        await raw.flush()
    finally:
        await raw.stop()

    await broker.start()
    try:
        deadline = time.monotonic() + 30
        rows = []
        while time.monotonic() < deadline:
            rows = await pool.fetch("SELECT note, times FROM applied ORDER BY note")
            if len(rows) == 4:
                break
            await asyncio.sleep(0.2)
        assert [(r["note"], r["times"]) for r in rows] == [("flaky", 1), ("ok1", 1), ("ok2", 1), ("ok3", 1)]
    finally:
        await broker.stop()

    dead = [d for d in await read_topic(kafka_bootstrap, topics.DEAD_LETTER)
            if dict(d.headers).get("dlq_consumer") == group.encode()]
    errors = sorted(dict(d.headers)["dlq_error"].decode().split(":")[0] for d in dead)
    assert errors == ["EnvelopeError", "processing failed after 3 attempts", "rejected"]
    poison = next(d for d in dead if d.value == b"\x00not-json")
    assert dict(poison.headers)["ce_id"] == b"x" and dict(poison.headers)["dlq_topic"] == topic.encode()

    # offsets were committed past everything, so a restart re-reads nothing
    c = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        committed = await c.committed(TopicPartition(topic, 0))
    finally:
        await c.stop()
    assert committed == len(sequence) + 1
    await producer.stop()
    await pool.close()
