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
