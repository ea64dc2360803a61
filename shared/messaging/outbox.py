"""Transactional outbox: events are written with the state change, then relayed to Kafka.

The relay publishes right after a commit (woken by `wake()`) and also polls, so whatever a crash
or a broker outage left unsent goes out later. One relay per schema publishes at a time (advisory
lock) so a case's events leave in the order they were written.
"""

from __future__ import annotations

import asyncio
import logging
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

import asyncpg
import orjson

from shared.cloudevents import Actor, CloudEvent
from shared.messaging.producer import EventProducer, Record

if TYPE_CHECKING:
    from shared.contracts import Contract

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event to publish on a topic, caused by an inbound event (whose trace it continues)."""

    topic: str
    event: CloudEvent


@dataclass
class Emitter:
    """The events one batch or one act decides, in order: the one way a service builds its events.

    `event_id` is derived by the caller from what caused the event (see `derive_id`), so the same
    input yields the same ids when it is replayed or retried; `traceparent` continues the cause's trace.
    """

    source: str
    out: list[Outgoing] = field(default_factory=list)
    # who acts: the authenticated person for an HTTP act; None = the service itself (a machine act)
    actor: Actor | None = None

    def emit(self, topic: str, data: "Contract", event_id: str, traceparent: str | None,
             time: datetime | None = None, actor: Actor | None = None) -> None:
        """Add an event on `topic` (written to the outbox with the state it belongs to), done by
        `actor` (default: the emitter's, else the service itself)."""
        ev = CloudEvent.of(data, source=self.source, event_id=event_id, time=time, actor=actor or self.actor)
        self.out.append(Outgoing(topic, ev.with_traceparent(traceparent)))


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    # base64: header values are bytes and may hold anything (a dead letter keeps them as they came)
    return orjson.dumps([[k, b64encode(v or b"").decode()] for k, v in headers]).decode()


def _decode_headers(raw: str) -> list[tuple[str, bytes]]:
    return [(k, b64decode(v)) for k, v in orjson.loads(raw)]


async def add_to_outbox(conn: asyncpg.Connection, items: Sequence[Outgoing]) -> None:
    """Write events to the outbox inside the caller's transaction (an id written before is ignored)."""
    await add_records_to_outbox(
        conn,
        [Record(o.topic, o.event.key(), o.event.value(), o.event.headers(), o.event.traceparent, o.event.id)
         for o in items],
    )


async def add_records_to_outbox(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    """Write raw records (each with an `event_id` for de-duplication) to the outbox."""
    if not records:
        return
    # one statement for the whole batch (arrays unnested in order, so `seq` keeps the emit order)
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, key, value, headers)"
        " SELECT e, t, k, v, h::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[])"
        " WITH ORDINALITY AS r(e, t, k, v, h, n) ORDER BY n"
        " ON CONFLICT (event_id) DO NOTHING",
        [r.event_id for r in records], [r.topic for r in records], [r.key for r in records],
        [r.value for r in records], [_encode_headers(r.headers) for r in records],
    )


class OutboxRelay:
    """Publishes unsent outbox rows in batches, marking them sent only once Kafka acknowledged them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: EventProducer,
        *,
        schema: str,
        batch: int,
        poll_seconds: float,
        connect: Callable[[], Awaitable[None]] | None = None,
        incarnation: Callable[[], Awaitable[str]] | None = None,
        on_new_broker: Callable[[], Awaitable[None]] | None = None,
        redeliver_seconds: float = 3600.0,
        incarnation_check_seconds: float = 5.0,
    ):
        self._pool = pool
        self._producer = producer
        self._connect = connect or producer.start
        self._lock_key = f"onewindow-outbox-{schema}"
        self._batch = batch
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # A broker that came back empty: publish again what was published in the last
        # `redeliver_seconds` (consumers' inboxes drop what they had already applied).
        self._incarnation = incarnation
        self._on_new_broker = on_new_broker
        self._redeliver = redeliver_seconds
        self._check_every = incarnation_check_seconds
        self._checked_at = float("-inf")

    def wake(self) -> None:
        """Ask the relay to publish now (called after a commit that wrote outbox rows)."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay loop in the background."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what is pending (best effort), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        backoff = self._poll
        while True:
            try:
                if not self._producer.started:
                    await self._connect()
                if self._incarnation and asyncio.get_running_loop().time() - self._checked_at >= self._check_every:
                    await self.check_incarnation()
                # a short batch means nothing was left: a commit after it wakes the relay again
                while await self.drain_once() >= self._batch:
                    pass
                backoff = self._poll
            except Exception as exc:  # broker or database down: keep the rows, try again later
                log.warning("outbox relay failed; will retry", extra={"error": type(exc).__name__})
                backoff = min(backoff * 2, 10.0)
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()

    async def check_incarnation(self) -> int:
        """Compare the broker's incarnation with the last one seen; on a new one, recreate the topics and
        mark the recently published rows unsent. Returns how many rows will be published again."""
        current = await self._incarnation()
        self._checked_at = asyncio.get_running_loop().time()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            known = await conn.fetchval("SELECT incarnation FROM broker_incarnations ORDER BY seq DESC LIMIT 1")
            if known == current:
                return 0
            await conn.execute("INSERT INTO broker_incarnations (incarnation) VALUES ($1)", current)
            if known is None:
                return 0  # the first broker this service has seen: nothing was lost
            if self._on_new_broker:
                await self._on_new_broker()
            again = await conn.fetch(
                "UPDATE outbox SET published_at = NULL WHERE published_at > now() - make_interval(secs => $1)"
                " RETURNING seq", self._redeliver)
        log.warning("the broker came back empty; publishing recent events again",
                    extra={"events": len(again), "window_seconds": self._redeliver})
        return len(again)

    async def drain_once(self) -> int:
        """Publish one batch of unsent rows; returns how many were published.

        One statement takes the relay's lock, picks the oldest unsent rows and marks them sent; the
        transaction commits only once Kafka acknowledged them (a failed send rolls the mark back)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                # the lock is asked once (a materialised CTE), not for every candidate row
                "WITH relay AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($1)) AS held)"
                " UPDATE outbox SET published_at = now() WHERE seq IN (SELECT seq FROM outbox"
                " WHERE published_at IS NULL AND (SELECT held FROM relay) ORDER BY seq LIMIT $2)"
                " RETURNING seq, event_id, topic, key, value, headers",
                self._lock_key, self._batch,
            )  # no rows: nothing to send, or another replica is relaying (it keeps the order)
            if not rows:
                return 0
            records = []
            for r in sorted(rows, key=lambda r: r["seq"]):
                headers = _decode_headers(r["headers"])
                tp = next((v.decode(errors="replace") for k, v in headers if k == "traceparent"), None)
                # a dead letter (or any record without a CloudEvents id) keeps its headers untouched
                inject = any(k == "ce_id" for k, _ in headers) and not any(k == "dlq_error" for k, _ in headers)
                records.append(Record(r["topic"], r["key"], r["value"], headers, tp, r["event_id"], inject))
            await self._producer.send_all(records)
            return len(rows)
