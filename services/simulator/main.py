"""A stand-in department: a plain Kafka client that signs for (签收) and resolves (办结) dispatches.

It plays an external system, so it uses only the wire contract: it reads `dispatch.<kind>`,
writes CloudEvents on `feedback.<kind>`, and commits its offsets after its feedback is acknowledged
(at-least-once; its event ids are derived from the dispatch, so a retry yields the same ids).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import topics
from shared.contracts.events import DispatchUrged, ExtensionDecided, ResolutionReviewed, ReturnReviewed
from shared.cloudevents import Actor, CloudEvent, ContractError, EnvelopeError, decode, derive_id
from shared.contracts import (
    CaseDispatched,
    ConfirmationDecided,
    DispatchAccepted,
    DispatchResolved,
    MediationToCourt,
    SupervisionNotice,
)
from shared.logs import setup_logging
from shared.messaging.producer import EventProducer, Record
from shared.settings import Settings, tool_settings
from shared.telemetry import setup_telemetry

log = logging.getLogger("onewindow.simulator")
EXTERNAL_KINDS = [topics.UnitKind.POLICE, topics.UnitKind.COURT, topics.UnitKind.PETITION, topics.UnitKind.GRID]


def feedback(dispatch: CaseDispatched, step: str, traceparent: str | None) -> Record:
    """The department's 签收 (step "accepted") or 办结 ("resolved") of a dispatch; ids derive from it."""
    source = f"/departments/{dispatch.unit_kind.value}/simulator"
    common = {"case_id": dispatch.case_id, "dispatch_id": dispatch.dispatch_id, "unit_id": dispatch.unit_id}
    data = (DispatchAccepted(**common, note="已签收") if step == "accepted"
            else DispatchResolved(**common, summary="已处置完毕（模拟）"))
    ev = CloudEvent.of(data, source=source, event_id=derive_id(source, dispatch.dispatch_id, step),
                       actor=Actor(source, "department", dispatch.unit_id))
    return _record(dispatch, ev, traceparent)


def confirmation(request: MediationToCourt, traceparent: str | None) -> Record:
    """The simulated court confirms an agreement (司法确认)."""
    source = "/departments/court/simulator"
    data = ConfirmationDecided(case_id=request.case_id, mediation_id=request.mediation_id, confirmed=True,
                               note="经审查，调解协议符合确认条件（模拟）")
    ev = CloudEvent.of(data, source=source, event_id=derive_id(source, request.mediation_id, "confirmation"),
                       actor=Actor(source, "department"))
    ev = ev.with_traceparent(traceparent)
    return Record(topics.COURT_REFERRALS, ev.key(), ev.value(), ev.headers(), traceparent, ev.id)


def _record(dispatch: CaseDispatched, ev: CloudEvent, traceparent: str | None) -> Record:
    ev = ev.with_traceparent(traceparent)
    return Record(topics.feedback_topic(dispatch.unit_kind), ev.key(), ev.value(), ev.headers(), traceparent, ev.id)


async def run_simulator(
    settings: Settings,
    kinds: list[topics.UnitKind],
    accept_delay: float,
    resolve_delay: float,
    stop: asyncio.Event,
    skip_units: set[str] = frozenset(),
) -> None:
    """Consume dispatches of `kinds` until `stop` is set; then finish the batch, commit and leave."""
    client = settings.kafka_client_options()
    await topics.ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions, **client)
    court_topics = [topics.COURT_MEDIATION] if topics.UnitKind.COURT in kinds else []
    consumer = AIOKafkaConsumer(
        *[topics.dispatch_topic(k) for k in kinds], *court_topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id="department-simulator",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        **client,
    )
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id="department-simulator", **client)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            work: list[tuple[CaseDispatched, str | None]] = []
            answers: list[Record] = []
            for records in batch.values():
                for rec in records:
                    try:
                        ev = decode(rec.key, rec.value, rec.headers)
                        dispatch = ev.model()
                        if isinstance(dispatch, (SupervisionNotice, DispatchUrged, ExtensionDecided,
                                                 ResolutionReviewed, ReturnReviewed)):
                            continue  # a real department would hurry up (a rejected resolution comes back
                            # as a new dispatch)
                        if isinstance(dispatch, MediationToCourt):
                            if dispatch.kind == "confirmation_request":  # the court confirms (司法确认)
                                answers.append(confirmation(dispatch, ev.traceparent))
                            continue
                        if not isinstance(dispatch, CaseDispatched):
                            raise ContractError(f"not a dispatch: {ev.type}")
                    except (EnvelopeError, ContractError) as exc:
                        log.warning("ignoring an invalid dispatch", extra={"offset": rec.offset, "error": str(exc)})
                        continue
                    if dispatch.unit_id in skip_units:
                        continue  # that unit is played by a real (or test) system
                    work.append((dispatch, ev.traceparent))
            try:
                await asyncio.sleep(accept_delay)
                await producer.send_all(answers + [feedback(d, "accepted", tp) for d, tp in work])
                await asyncio.sleep(resolve_delay)
                await producer.send_all([feedback(d, "resolved", tp) for d, tp in work])
            except KafkaError as exc:
                # the broker is away (or came back without its topics): read the batch again later
                log.warning("answers not sent; the batch will be read again", extra={"error": type(exc).__name__})
                for tp, recs in batch.items():
                    if tp in consumer.assignment():  # after a rebalance the new owner reads it
                        consumer.seek(tp, recs[0].offset)
                await asyncio.sleep(1)
                continue
            try:
                await consumer.commit({TopicPartition(tp.topic, tp.partition): recs[-1].offset + 1
                                       for tp, recs in batch.items()})
            except CommitFailedError:
                # the group rebalanced (or the broker came back empty): the batch is read again, and
                # the answers, whose ids derive from the dispatch, are dropped as repeats by the router
                log.warning("commit refused after a rebalance; the batch will be read again")
            log.info("dispatches handled", extra={"count": len(work)})
    finally:
        await consumer.stop()
        await producer.stop()


def main(kinds: list[str], accept_delay: float, resolve_delay: float, skip_units: set[str] = frozenset()) -> None:
    """Run the simulator until SIGINT/SIGTERM."""
    settings = tool_settings()
    setup_logging("simulator", settings.log_level)
    setup_telemetry("simulator")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_simulator(settings, [topics.UnitKind(k) for k in kinds], accept_delay, resolve_delay, stop,
                            skip_units)

    asyncio.run(_main())
