"""Batch consumption with inbox, outbox and dead letters: at-least-once delivery, effectively once.

For each batch the consumer:
1. decodes every record; one that is not a valid CloudEvent (or breaks its contract) is a poison
   record bound for the dead-letter topic;
2. in ONE PostgreSQL transaction, records the ids of the new events in the inbox, lets the service
   apply them and writes the resulting events to the outbox;
3. if that transaction fails for a reason other than an outage, retries each event alone (with
   backoff) so that one bad event cannot hold back the others, and dead-letters the ones that
   keep failing;
4. publishes the dead letters and waits for their acks; only then returns, and the offsets are
   committed (faststream ack). An outage (database or broker) raises instead: the batch is
   sought back and re-read, and the inbox drops what was already applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import asyncpg
from aiokafka import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry import trace

from shared import topics
from shared.cloudevents import CloudEvent, ContractError, EnvelopeError, decode
from shared.contracts import Contract
from shared.messaging.outbox import Outgoing, OutboxRelay, add_to_outbox
from shared.messaging.producer import EventProducer, Record
from shared.personal import mask_text
from shared.telemetry import context_from, current_traceparent, is_sampled, tracer

log = logging.getLogger(__name__)

# Failures that mean "a dependency is down", not "this event is bad": never dead-letter for them.
OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
)


@dataclass(slots=True)
class Inbound:
    """A decoded event with its Kafka position; `model` is its validated data (None if not checked)."""

    record: ConsumerRecord
    event: CloudEvent | None  # None when the subscription takes raw records (dead letters)
    model: Contract | None
    traceparent: str | None = field(default=None)  # of this consumer's processing span

    @property
    def inbox_key(self) -> str:
        """What identifies the input for de-duplication: the topic, the CloudEvent's source and id.

        The topic is part of it because ids are derivable: an event forged on a department's topic
        with the source and id of a router event must not make the real one a "repeat" (a consumer
        that traces everything, like audit, takes both)."""
        if self.event is None:
            return f"kafka {self.record.topic}/{self.record.partition}/{self.record.offset}"
        return f"{self.record.topic} {self.event.source} {self.event.id}"


# Links from a batch's span to the sampled events in it (a bound: a span's links are kept in memory).
MAX_LINKS = 64


class Reject(Exception):
    """Raised by a handler for an event that can never be applied (e.g. feedback for another unit's
    dispatch): it goes to the dead-letter topic at once, without retries."""


# A service's batch handler: apply new events inside the open transaction, return events to publish.
BatchHandler = Callable[[asyncpg.Connection, list[Inbound]], Awaitable[list[Outgoing]]]


class BatchProcessor:
    """Applies batches of Kafka records to a service through inbox + outbox (see module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        producer: EventProducer,
        relay: OutboxRelay | None,
        handle: BatchHandler,
        validate_contracts: bool = True,
        decode_envelopes: bool = True,
        enforce_publishers: bool = True,
        explain: Callable[[ConsumerRecord, str], Record | None] | None = None,
        retry_attempts: int = 3,
        retry_backoff_seconds: float = 0.2,
    ) -> None:
        self.name = name
        self._pool = pool
        self._producer = producer
        self._relay = relay
        self._handle = handle
        self._validate = validate_contracts
        self._decode = decode_envelopes
        # refuse what the topic's publishing contract does not allow (shared/topics.py: PUBLISHERS)
        self._enforce = enforce_publishers
        # An extra record for the sender, published with each dead letter (e.g. a rejection on a
        # topic the department may read: it cannot read the dead-letter topic).
        self._explain = explain
        self._attempts = retry_attempts
        self._backoff = retry_backoff_seconds

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply one batch; returns only when every record is applied or safely dead-lettered."""
        inbound: list[Inbound] = []
        dead: list[tuple[ConsumerRecord, str]] = []
        for rec in records:
            if not self._decode:
                inbound.append(Inbound(rec, None, None))
                continue
            try:
                ev = decode(rec.key, rec.value, rec.headers)
                refused = topics.refusal(rec.topic, ev.type, ev.source) if self._enforce else None
                if refused:
                    dead.append((rec, f"refused by the topic's contract: {refused}"))
                    continue
                model = ev.model() if self._validate else None
                inbound.append(Inbound(rec, ev, model))
            except (EnvelopeError, ContractError) as exc:
                dead.append((rec, f"{type(exc).__name__}: {exc}"))
        if inbound:
            try:
                await self.apply(inbound)
            except OUTAGES:
                await asyncio.sleep(self._backoff)
                raise
            except Exception as exc:
                log.warning("batch failed; isolating events", extra={"consumer": self.name, "error": repr(exc)[:300]})
                dead.extend(await self._apply_one_by_one(inbound))
        if dead:
            await self._dead_letter(dead)
        if self._relay:
            self._relay.wake()

    async def _apply_one_by_one(self, inbound: list[Inbound]) -> list[tuple[ConsumerRecord, str]]:
        dead = []
        for item in inbound:
            for attempt in range(self._attempts):
                try:
                    await self.apply([item])
                    break
                except OUTAGES:
                    raise
                except Reject as exc:
                    dead.append((item.record, f"rejected: {exc}"[:2000]))
                    break
                except Exception as exc:
                    error = f"processing failed after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                    await asyncio.sleep(self._backoff * 2**attempt)
            else:
                log.error(
                    "event dead-lettered",
                    extra={"consumer": self.name, "topic": item.record.topic, "offset": item.record.offset},
                )
                dead.append((item.record, error[:2000]))
        return dead

    async def apply(self, inbound: list[Inbound]) -> None:
        """Apply decoded events in one transaction: inbox (each event once), handler, outbox.

        Spans: one for the batch (linked to the sampled events it carries) and one per event of a
        sampled case only, child of the event's own span so the case's trace stays whole; an event of
        an unsampled case passes its traceparent on as it came (no span, no cost)."""
        spans = []
        for item in inbound:
            parent = item.event.traceparent if item.event else None
            if not is_sampled(parent):
                item.traceparent = parent
                continue
            span = tracer().start_span(
                f"process {item.record.topic}",
                kind=trace.SpanKind.CONSUMER,
                context=context_from(parent),
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": item.record.topic,
                    "messaging.consumer.group.name": self.name,
                    "messaging.message.id": item.event.id if item.event else "",
                    "messaging.kafka.offset": item.record.offset,
                    "messaging.destination.partition.id": str(item.record.partition),
                    "cloudevents.event_type": item.event.type if item.event else "",
                },
            )
            with trace.use_span(span):
                item.traceparent = current_traceparent()
            spans.append(span)
        batch = tracer().start_span(
            f"process batch {self.name}",
            kind=trace.SpanKind.CONSUMER,
            context=otel_context.Context(),  # a batch belongs to no one case: its own (sampled) root
            links=[trace.Link(s.get_span_context()) for s in spans[:MAX_LINKS] if s.get_span_context().is_valid],
            attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                        "messaging.consumer.group.name": self.name, "messaging.batch.message_count": len(inbound)},
        )
        spans.append(batch)
        try:
            with trace.use_span(batch):
                async with self._pool.acquire() as conn, conn.transaction():
                    # per consumer group: two subscriptions of one service may read the same event
                    keys = [f"{self.name} {i.inbox_key}" for i in inbound]
                    new_keys = {
                        r["event_key"]
                        for r in await conn.fetch(
                            "INSERT INTO inbox (event_key) SELECT DISTINCT unnest($1::text[])"
                            " ON CONFLICT DO NOTHING RETURNING event_key",
                            keys,
                        )
                    }
                    fresh = []
                    for item, key in zip(inbound, keys):
                        if key in new_keys:
                            new_keys.discard(key)  # a duplicate inside the batch is applied once
                            fresh.append(item)
                    if fresh:
                        await add_to_outbox(conn, await self._handle(conn, fresh))
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR)
            raise
        finally:
            for span in spans:
                span.end()

    async def _dead_letter(self, dead: list[tuple[ConsumerRecord, str]]) -> None:
        """Publish poison records with their original bytes and headers plus the error; await the acks."""
        for rec, error in dead:
            log.warning(
                "dead letter",
                extra={"consumer": self.name, "topic": rec.topic, "partition": rec.partition,
                       "offset": rec.offset, "error": mask_text(error)[:300]},
            )
        records = [dead_letter_record(rec, error, self.name) for rec, error in dead]
        if self._explain:
            records += [r for r in (self._explain(rec, error) for rec, error in dead) if r is not None]
        await self._producer.send_all(records)


# What a redacted dead letter keeps of the original headers: the CloudEvents envelope and the trace.
ENVELOPE_HEADERS = frozenset(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time",
                              "ce_dataschema", "content-type", "traceparent", "tracestate"])


def _masked(raw: bytes) -> bytes:
    """A sender's own reference (key, ce_subject) with anything like personal data masked."""
    try:
        return mask_text(raw.decode()).encode()
    except UnicodeDecodeError:
        return hashlib.sha256(raw).hexdigest().encode()


def redacted(rec: ConsumerRecord, error: str) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    """(key, value, headers, error) of a dead letter that must not keep personal data: a JSON note with
    the sha256 and size of the original value instead of the value, only the envelope headers, and the
    key, subject and error masked (shared.personal). The sender, who has the original, can match it by
    the hash."""
    value = rec.value or b""
    digest = hashlib.sha256(value).hexdigest()
    note = {"redacted": "personal data: the value is not kept", "sha256": digest, "bytes": len(value)}
    headers = [(k, _masked(v) if k == "ce_subject" else v) for k, v in rec.headers or () if k in ENVELOPE_HEADERS]
    headers.append(("dlq_value_sha256", digest.encode()))
    return _masked(rec.key or b""), json.dumps(note).encode(), headers, mask_text(error)


def dead_letter_record(rec: ConsumerRecord, error: str, consumer: str) -> Record:
    """The dead-letter record of a poison record: its key, value and headers as they came, plus
    `dlq_error`, `dlq_consumer`, `dlq_topic`, `dlq_partition`, `dlq_offset`. From a topic that carries
    personal data (topics.PERSONAL_TOPICS) the value and the other headers are replaced (`redacted`)."""
    key, value, headers = rec.key or b"", rec.value or b"", list(rec.headers or ())
    if rec.topic in topics.PERSONAL_TOPICS:
        key, value, headers, error = redacted(rec, error)
    headers += [
        ("dlq_error", error.encode()),
        ("dlq_consumer", consumer.encode()),
        ("dlq_topic", rec.topic.encode()),
        ("dlq_partition", str(rec.partition).encode()),
        ("dlq_offset", str(rec.offset).encode()),
    ]
    tp = next((v.decode(errors="replace") for k, v in headers if k == "traceparent" and v), None)
    event_id = f"dlq:{consumer}:{rec.topic}:{rec.partition}:{rec.offset}"
    return Record(topics.DEAD_LETTER, key, value, headers, tp, event_id, inject_trace=False)
