"""The transactional outbox: rows written while the broker is down are published once it is up."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path

from shared import devstack, topics
from shared.cloudevents import CloudEvent, decode
from shared.contracts import DispatchAccepted
from shared.db import create_pool, migrate
from shared.messaging.outbox import Outgoing, OutboxRelay, add_to_outbox
from shared.messaging.producer import EventProducer
from tests.conftest import read_topic


async def test_outbox_keeps_events_while_the_broker_is_down_and_relays_them_in_order(
    database_url: str, tmp_path: Path, workdir: Path
):
    schema = f"otest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, tmp_path)  # plumbing tables only
    pool = await create_pool(database_url, schema)
    port = devstack.free_port()  # nothing listens here yet: the broker is "down"
    bootstrap = f"127.0.0.1:{port}"
    producer = EventProducer(bootstrap, "otest")

    async def connect() -> None:
        await topics.ensure_topics(bootstrap, 1, [topics.CASES_RECEIVED])
        await producer.start()

    relay = OutboxRelay(pool, producer, schema=schema, batch=100, poll_seconds=0.2, connect=connect)
    case = uuid.uuid4()
    events = [
        CloudEvent.of(DispatchAccepted(case_id=case, dispatch_id=uuid.uuid4(), unit_id="u", note=str(i)),
                      source="/otest", event_id=f"ev-{i}")
        for i in range(20)
    ]
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, [Outgoing(topics.CASES_RECEIVED, e) for e in events])
        await add_to_outbox(conn, [Outgoing(topics.CASES_RECEIVED, events[0])])  # same id again: ignored
    relay.start()
    await asyncio.sleep(1.0)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 20

    broker = devstack.EmbeddedBroker(port, workdir / "logs" / "outbox-broker.log").start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0:
                break
            await asyncio.sleep(0.2)
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
        got = await read_topic(bootstrap, topics.CASES_RECEIVED)
        ids = [decode(r.key, r.value, r.headers).id for r in got]
        assert ids == [e.id for e in events], "each event once, in the order written"
    finally:
        await relay.stop()
        await producer.stop()
        await pool.close()
        broker.stop()


async def test_a_broker_that_comes_back_empty_gets_the_recent_events_again(database_url: str, tmp_path: Path):
    """Tansu keeps nothing: after its restart the incarnation marker is new, the relay recreates the
    topics and publishes again what it published in the window (older rows stay as they are)."""
    from shared.messaging.incarnation import IncarnationProbe

    schema = f"otest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, tmp_path)
    pool = await create_pool(database_url, schema)
    broker = devstack.EmbeddedBroker(devstack.free_port(), tmp_path / "broker.log").start()
    bootstrap = broker.bootstrap_servers
    probe = IncarnationProbe(bootstrap)
    producer = EventProducer(bootstrap, "otest")
    recreated: list[int] = []

    async def connect() -> None:
        await topics.ensure_topics(bootstrap, 1, [topics.CASES_RECEIVED])
        await producer.start()

    async def on_new_broker() -> None:
        await topics.ensure_topics(bootstrap, 1, [topics.CASES_RECEIVED])
        recreated.append(1)

    relay = OutboxRelay(pool, producer, schema=schema, batch=100, poll_seconds=0.2, connect=connect,
                        incarnation=probe.current, on_new_broker=on_new_broker, redeliver_seconds=600)
    case = uuid.uuid4()
    events = [CloudEvent.of(DispatchAccepted(case_id=case, dispatch_id=uuid.uuid4(), unit_id="u", note=str(i)),
                            source="/otest", event_id=f"ev-{i}") for i in range(5)]
    try:
        await connect()
        first = await probe.current()
        assert await probe.current() == first, "the same broker keeps its id"
        assert await relay.check_incarnation() == 0, "the first broker seen: nothing to publish again"
        async with pool.acquire() as conn, conn.transaction():
            await add_to_outbox(conn, [Outgoing(topics.CASES_RECEIVED, e) for e in events])
        assert await relay.drain_once() == 5
        # one row published long ago: outside the window
        await pool.execute("UPDATE outbox SET published_at = now() - interval '2 hours' WHERE event_id = 'ev-0'")
        assert len(await read_topic(bootstrap, topics.CASES_RECEIVED)) == 5

        broker.stop()
        broker.start()  # same port, empty
        deadline = time.monotonic() + 30
        while True:  # the relay retries the same way while the broker reconnects
            try:
                second = await probe.current()
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
        assert second != first
        assert await relay.check_incarnation() == 4 and recreated == [1]
        assert await relay.check_incarnation() == 0, "once per incarnation"
        assert await relay.drain_once() == 4  # the same producer: it reconnects by itself
        again = [decode(r.key, r.value, r.headers).id for r in await read_topic(bootstrap, topics.CASES_RECEIVED)]
        assert again == [f"ev-{i}" for i in range(1, 5)], "in their original order"
    finally:
        await probe.close()
        await producer.stop()
        broker.stop()
        await pool.close()


async def test_two_relays_of_one_schema_publish_every_event_once_in_the_order_written(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
):
    """Replicas share an outbox: whichever holds the relay's lock publishes, so events leave in the
    order they were written however the two relays' drains interleave with the writers' commits."""
    schema = f"otest_{secrets.token_hex(3)}"
    topic = f"otest.order.{secrets.token_hex(3)}"
    await migrate(database_url, schema, tmp_path)
    await topics.ensure_topics(kafka_bootstrap, 1, [topic])
    pool = await create_pool(database_url, schema, max_size=6)
    producers = [EventProducer(kafka_bootstrap, f"otest-{i}") for i in range(2)]
    relays = [OutboxRelay(pool, p, schema=schema, batch=7, poll_seconds=0.05) for p in producers]
    case = uuid.uuid4()
    events = [CloudEvent.of(DispatchAccepted(case_id=case, dispatch_id=uuid.uuid4(), unit_id="u", note=str(i)),
                            source="/otest", event_id=f"ev-{i}") for i in range(300)]
    for r in relays:
        r.start()
    try:
        for i in range(0, len(events), 3):  # one small transaction after another, each waking both relays
            async with pool.acquire() as conn, conn.transaction():
                await add_to_outbox(conn, [Outgoing(topic, e) for e in events[i:i + 3]])
            for r in relays:
                r.wake()
            await asyncio.sleep(0)
        deadline = time.monotonic() + 30
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        got = [decode(r.key, r.value, r.headers).id for r in await read_topic(kafka_bootstrap, topic)]
        assert got == [e.id for e in events]
    finally:
        for r in relays:
            await r.stop()
        for p in producers:
            await p.stop()
        await pool.close()
