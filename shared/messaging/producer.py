"""The one Kafka producer of a process: publishes many records and awaits their acks together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Sequence

from aiokafka import AIOKafkaProducer
from opentelemetry import trace

from shared.telemetry import context_from, current_traceparent, is_sampled, tracer


@dataclass(frozen=True, slots=True)
class Record:
    """A record ready for Kafka. `traceparent` is the parent of its producer span."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    traceparent: str | None = None
    event_id: str | None = None
    # False keeps the headers byte for byte (dead letters keep the original traceparent).
    inject_trace: bool = True


class EventProducer:
    """aiokafka producer tuned for the local broker and any Kafka (no idempotence: Tansu lacks it)."""

    def __init__(self, bootstrap_servers: str, client_id: str, **client: object) -> None:
        self._producer = AIOKafkaProducer(
            **client,
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            request_timeout_ms=10_000,
        )
        self._started = False

    async def start(self) -> None:
        """Connect (raises while the broker is unreachable)."""
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        """Flush and close."""
        if self._started:
            self._started = False
            await self._producer.stop()

    @property
    def started(self) -> bool:
        """Whether the producer is connected."""
        return self._started

    async def send_all(self, records: Sequence[Record]) -> None:
        """Send every record without waiting per record, then wait for all acks (raises on any failure).

        A record of a sampled trace gets a PRODUCER span (messaging conventions) whose context replaces
        its traceparent; one of an unsampled trace leaves with its headers as they are (no span)."""
        futures = []
        send = self._producer.send
        for rec in records:
            if not (rec.inject_trace and is_sampled(rec.traceparent)):
                futures.append(await send(rec.topic, rec.value, key=rec.key, headers=rec.headers))
                continue
            span = tracer().start_span(
                f"send {rec.topic}",
                kind=trace.SpanKind.PRODUCER,
                context=context_from(rec.traceparent),
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": rec.topic,
                    "messaging.message.id": rec.event_id or "",
                    "messaging.kafka.message.key": rec.key.decode(errors="replace"),
                },
            )
            with trace.use_span(span, end_on_exit=True):
                headers = [(k, v) for k, v in rec.headers if k != "traceparent"]
                tp = current_traceparent()
                if tp:
                    headers.append(("traceparent", tp.encode()))
                futures.append(await send(rec.topic, rec.value, key=rec.key, headers=headers))
        if futures:
            await asyncio.gather(*futures)
