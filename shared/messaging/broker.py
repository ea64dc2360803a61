"""The FastStream broker factory and batch subscriptions with explicit acks."""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.messaging.consumer import BatchProcessor
from shared.settings import Settings


def create_broker(settings: Settings, service: str) -> KafkaBroker:
    """A KafkaBroker for one service process. Built in factories only, never at import."""
    security = None
    options = settings.kafka_client_options()
    if options:
        from faststream.security import SASLScram256, SASLScram512

        scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
        security = scram(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                         use_ssl=settings.kafka_security_protocol == "SASL_SSL")
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=security,
        client_id=f"onewindow-{service}",
        # no per-message telemetry middleware: BatchProcessor spans each batch and each sampled event
        graceful_timeout=20.0,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        # per-message "Received/Processed" lines are debug noise; errors still log at ERROR
        logger=logging.getLogger(f"onewindow.{service}.faststream"),
        log_level=logging.DEBUG,
    )


async def _raw(msg: Any) -> tuple:
    # The processor reads the raw records itself: FastStream must not decode (and choke on) poison.
    # The records are the handler's body: a `KafkaMessage` parameter (a context field) would be
    # resolved in a worker thread on every batch.
    raw = msg.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def subscribe_batches(broker: KafkaBroker, processor: BatchProcessor, topics: list[str], settings: Settings) -> None:
    """Feed batches of `topics` to `processor` in consumer group `processor.name`.

    NACK_ON_ERROR: the offsets are committed only after `process` returned (work durable, poison
    dead-lettered); if it raises, the batch is sought back and read again — never skipped.
    """

    @broker.subscriber(
        *topics,
        group_id=processor.name,
        batch=True,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        decoder=_raw,
    )
    async def on_batch(records: Any) -> None:
        await processor.process(records)
