"""Which lifetime of the broker are we talking to?

A one-partition marker topic holds, at offset 0, an id written by the first client that found the
topic missing. A durable broker (Kafka) keeps it for ever; a broker that restarts empty (Tansu keeps
nothing) loses it, and the next check writes a new one. Every client reads offset 0, so all agree.
"""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics

TOPIC = "onewindow.broker-incarnation"
_TP = TopicPartition(TOPIC, 0)


class IncarnationProbe:
    """Reads (and if missing, writes) the broker's incarnation id, reusing one consumer."""

    def __init__(self, bootstrap: str, **client) -> None:
        self._bootstrap, self._client = bootstrap, client
        self._consumer: AIOKafkaConsumer | None = None

    async def current(self, timeout: float = 5.0) -> str:
        """The incarnation id; raises on a broker that cannot be reached within `timeout`."""
        return await asyncio.wait_for(self._current(), timeout)

    async def _current(self) -> str:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                              enable_auto_commit=False, fetch_max_wait_ms=20, **self._client)
            await self._consumer.start()
        c = self._consumer
        for _ in range(2):
            if TOPIC in await c.topics():
                c.assign([_TP])
                c.seek(_TP, 0)
                try:
                    batch = await c.getmany(_TP, timeout_ms=1000, max_records=1)
                finally:
                    # no prefetching between checks: an assigned partition is fetched again and again
                    # (every fetch_max_wait_ms, for as long as the process lives) unless it is paused
                    c.pause(_TP)
                if batch.get(_TP):
                    return batch[_TP][0].value.decode()
            await self._mark()
        raise RuntimeError("the broker's incarnation marker could not be read")

    async def _mark(self) -> None:
        await topics.ensure_topics(self._bootstrap, 1, [TOPIC], **self._client)
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", **self._client)
        await producer.start()
        try:
            # whoever writes first defines the id; later writes are ignored (everyone reads offset 0)
            await producer.send_and_wait(TOPIC, uuid.uuid4().hex.encode(), partition=0)
        finally:
            await producer.stop()
        await self._consumer._client.force_metadata_update()  # noqa: SLF001 - see the new topic now

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
