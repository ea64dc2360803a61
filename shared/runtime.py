"""The composition root shared by the services: database, producer, outbox relay, broker, subscriptions."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from fastapi import FastAPI

import asyncpg
from faststream.kafka import KafkaBroker

from shared import topics
from shared.db import create_pool, login_url, migrate, service_role
from shared.logs import setup_logging
from shared.messaging.broker import create_broker, subscribe_batches
from shared.messaging.consumer import BatchHandler, BatchProcessor
from shared.messaging.incarnation import IncarnationProbe
from shared.messaging.outbox import OutboxRelay
from shared.messaging.producer import EventProducer
from shared.settings import Settings
from shared.telemetry import setup_telemetry

log = logging.getLogger(__name__)


@dataclass
class ServiceRuntime:
    """Everything a service process holds while it runs; built by `start`, released by `stop`."""

    service: str
    settings: Settings
    migrations: Path
    # One batch handler per consumer group that the topology (shared/topics.py: SERVICES) gives the
    # service; the topics, contract checks and publisher checks of each group come from there.
    handlers: dict[str, BatchHandler] = field(default_factory=dict)
    # A record for the sender of a dead letter, per consumer group (see BatchProcessor).
    explain: dict[str, Callable] = field(default_factory=dict)
    pool: asyncpg.Pool | None = None
    producer: EventProducer | None = None
    relay: OutboxRelay | None = None
    broker: KafkaBroker | None = None
    # Runs once the database is migrated and pooled, before any consumer starts (backfills).
    prepare: Callable[["ServiceRuntime"], Awaitable[None]] | None = None
    # Service-specific components started after the plumbing and stopped before it.
    after_start: Callable[["ServiceRuntime"], Awaitable[None]] | None = None
    before_stop: Callable[["ServiceRuntime"], Awaitable[None]] | None = None
    # True: the service works without Kafka (intake's HTTP window); consumers start once it is up.
    consumers_optional: bool = False
    # Periodic jobs (supervision ticks, checkpoints): (name, seconds, job(runtime) -> truthy if it wrote).
    periodic: list[tuple[str, float, Callable[["ServiceRuntime"], Awaitable[object]]]] = field(default_factory=list)
    _consumers_task: asyncio.Task | None = None
    _probe: IncarnationProbe | None = None
    _periodic_tasks: list[asyncio.Task] = field(default_factory=list)

    async def _every(self, name: str, seconds: float, job) -> None:
        while True:
            try:
                if await job(self):
                    self.relay.wake()  # the job wrote outbox rows
            except Exception:
                log.exception("periodic job failed; its next run retries", extra={"job": name})
            await asyncio.sleep(seconds)

    async def start(self) -> None:
        """Migrate, connect, start the relay and the subscriptions."""
        s = self.settings
        setup_logging(self.service, s.log_level)
        setup_telemetry(self.service, trace_sql=s.trace_sql)
        # migrations and grants as the schema owner; the service itself as its own role (least privilege)
        role = service_role(self.service)
        await migrate(s.migration_database_url or s.database_url, self.service, self.migrations, role=role)
        login = login_url(s.database_url, role) if s.database_login_per_service else s.database_url
        self.pool = await create_pool(login, self.service, min_size=s.db_pool_min, max_size=s.db_pool_max,
                                      acquire_timeout=s.db_acquire_timeout_seconds,
                                      statement_timeout_ms=s.db_statement_timeout_ms)
        if self.prepare:
            await self.prepare(self)
        client = s.kafka_client_options()  # fails at start-up on an incomplete SASL configuration
        self.producer = EventProducer(s.kafka_bootstrap_servers, client_id=f"onewindow-{self.service}", **client)
        producer = self.producer

        async def connect() -> None:
            await topics.ensure_topics(s.kafka_bootstrap_servers, s.topic_partitions, **client)
            await producer.start()

        self._probe = IncarnationProbe(s.kafka_bootstrap_servers, **client)

        async def recreate_topics() -> None:
            await topics.ensure_topics(s.kafka_bootstrap_servers, s.topic_partitions, **client)

        self.relay = OutboxRelay(
            self.pool,
            self.producer,
            schema=self.service,
            batch=s.outbox_batch,
            poll_seconds=s.outbox_poll_seconds,
            connect=connect,
            incarnation=self._probe.current,
            on_new_broker=recreate_topics,
            redeliver_seconds=s.outbox_redeliver_seconds,
        )
        consumers = consumer_groups(self.service, self.handlers)
        if consumers:
            self.broker = create_broker(s, self.service)
            for consumer in consumers:
                processor = BatchProcessor(
                    name=consumer.group,
                    pool=self.pool,
                    producer=self.producer,
                    relay=self.relay,
                    handle=self.handlers[consumer.group],
                    validate_contracts=consumer.validate_contracts,
                    decode_envelopes=consumer.decode_envelopes,
                    enforce_publishers=consumer.enforce_publishers,
                    explain=self.explain.get(consumer.group),
                    retry_attempts=s.retry_attempts,
                    retry_backoff_seconds=s.retry_backoff_seconds,
                )
                subscribe_batches(self.broker, processor, list(consumer.topics), s)
            if self.consumers_optional:
                self._consumers_task = asyncio.create_task(self._start_consumers_when_possible())
            else:
                await connect()
                await self.broker.start()
        self.relay.start()
        for name, seconds, job in self.periodic:
            self._periodic_tasks.append(asyncio.create_task(self._every(name, seconds, job), name=name))
        if self.after_start:
            await self.after_start(self)
        log.info("service started", extra={"service_name": self.service})

    async def _start_consumers_when_possible(self) -> None:
        delay = 0.5
        while True:
            try:
                await topics.ensure_topics(self.settings.kafka_bootstrap_servers, self.settings.topic_partitions,
                                           **self.settings.kafka_client_options())
                await self.broker.start()
                log.info("consumers started")
                return
            except Exception as exc:
                log.warning("broker unreachable; consumers wait", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """Graceful shutdown: stop fetching, finish in-flight batches (then commit), drain, close."""
        if self.before_stop:
            await self.before_stop(self)
        for task in self._periodic_tasks:
            task.cancel()
        if self._consumers_task and not self._consumers_task.done():
            self._consumers_task.cancel()
        if self.broker:
            await self.broker.stop()
        if self.relay:
            await self.relay.stop()
        if self._probe:
            await self._probe.close()
        if self.producer:
            await self.producer.stop()
        if self.pool:
            await self.pool.close()
        log.info("service stopped", extra={"service_name": self.service})


def consumer_groups(service: str, handlers: dict[str, BatchHandler]) -> list[topics.Consumer]:
    """The service's consumer groups from the topology, each with its handler; a group without a
    handler, or a handler without a group, is a wiring error found at start-up."""
    party = topics.SERVICES[service]
    groups = {c.group for c in party.consumers}
    if set(handlers) != groups:
        raise ValueError(f"{service}: handlers for {sorted(handlers)}, but the topology has groups {sorted(groups)}")
    return list(party.consumers)


# Bodies of the operator and mediator APIs are small JSON documents; intake sets its own limit.
DEFAULT_MAX_BODY = 64 * 1024


def service_app(runtime: ServiceRuntime, *, title: str, routers: list | None = None,
                max_body: int = DEFAULT_MAX_BODY) -> "FastAPI":
    """The service's ASGI app: lifespan runs the runtime; problem details, health, OTel HTTP spans,
    and a body limit in front of everything (a large body is refused before authentication reads it)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from shared.http import BodyLimit, add_health, install_cors, install_problem_handlers

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    # FastAPI's own telemetry stays off (it steps aside for the OTel instrumentation below anyway, after
    # checking for it on every request)
    app = FastAPI(title=title, lifespan=lifespan, version="1",
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    install_problem_handlers(app)

    add_health(app, ready=lambda: runtime.pool is not None)
    for router in routers or []:
        app.include_router(router)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_document() -> dict:
        """This service's AsyncAPI 3 document (documentation only: no "try it out" publishing)."""
        from shared.contracts.asyncapi import service_document

        return service_document(runtime.service)
    # The server span only: no internal span per ASGI receive and send message (two or three more spans
    # per request that say nothing the server span does not).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz", exclude_spans=["receive", "send"])
    app.add_middleware(BodyLimit, max_bytes=max_body)
    install_cors(app, runtime.settings)  # outermost: even a 413 reaches the console's page readable
    return app
