"""Fixtures: a real Kafka-protocol broker and a real PostgreSQL, started like `onewindow dev` does.

Set KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL to run the same suite against Apache Kafka and an
existing PostgreSQL; otherwise an embedded Tansu broker and an embedded PostgreSQL are started.
Every test session works in a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared import devstack
from shared.identity import LocalIssuer

# Who the tests act as: a name per grant; each is a JWT signed by the session's own local issuer.
GRANTS = {
    "clerk-token-0001": {"role": "clerk", "subject": "clerk-1", "divisions": ["*"]},
    "clerk-token-xishan": {"role": "clerk", "subject": "clerk-2", "divisions": ["339902"]},
    "operator-token-0001": {"role": "operator", "subject": "operator-1", "divisions": ["*"]},
    "hotline-token-0001": {"role": "hotline", "subject": "hotline-1", "divisions": ["*"]},
    "grid-token-0001": {"role": "grid", "subject": "grid-1", "divisions": ["339901001"]},
    "citizen-token-0001": {"role": "citizen", "subject": "citizen-1", "divisions": ["*"]},
    "citizen-token-0002": {"role": "citizen", "subject": "citizen-2", "divisions": ["*"]},
    "department-token-0001": {"role": "department", "subject": "police-339901", "divisions": ["*"]},
    "auditor-token-0001": {"role": "auditor", "subject": "auditor-1", "divisions": ["*"]},
    "operator-token-xishan": {"role": "operator", "subject": "operator-2", "divisions": ["339902"]},
}


def _mediator_grants() -> dict:
    from services.mediation.domain import load_directory

    return {f"mediator-token-{m.id}": {"role": "mediator", "subject": m.id, "divisions": ["*"]}
            for m in load_directory().mediator}


GRANTS.update(_mediator_grants())
ISSUER = LocalIssuer(Path(tempfile.mkdtemp(prefix="onewindow-test-issuer-")))
TOKENS = {name: ISSUER.mint(g["subject"], g["role"], g["divisions"]) for name, g in GRANTS.items()}


def auth(name: str) -> dict[str, str]:
    """The Authorization header of a named test grant."""
    return {"Authorization": f"Bearer {TOKENS[name]}"}


CLERK = auth("clerk-token-0001")
OPERATOR = auth("operator-token-0001")


@pytest.fixture(scope="session")
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="onewindow-test-"))
    (path / "logs").mkdir()
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(workdir: Path):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    broker = devstack.EmbeddedBroker(devstack.free_port(), workdir / "logs" / "broker.log").start()
    yield broker.bootstrap_servers
    broker.stop()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def new_database(workdir: Path):
    """A factory of empty databases on the test server (embedded unless DATABASE_URL is set)."""
    base = os.environ.get("DATABASE_URL") or devstack.embedded_postgres_dsn(workdir / "pgdata")

    def create() -> str:
        name = f"onewindow_test_{secrets.token_hex(4)}"

        async def run() -> None:
            conn = await asyncpg.connect(base)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(run())
        return _with_database(base, name)

    return create


@pytest.fixture(scope="session")
def database_url(new_database) -> str:
    return new_database()


@pytest.fixture(scope="session")
def service_env(kafka_bootstrap: str, database_url: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        **ISSUER.env(),
        "ONEWINDOW_AUDIT_SIGNING_KEY": "test-audit-signing-key",
        "ONEWINDOW_OUTBOX_POLL_SECONDS": "0.5",
        "ONEWINDOW_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "ONEWINDOW_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
        "ONEWINDOW_DATABASE_LOGIN_PER_SERVICE": "true",  # each service as its own role (DATABASE_URL: the owner)
    }


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record on a topic, read from the beginning by a consumer outside any group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    out = []
    try:
        while batch := await consumer.getmany(timeout_ms=500):
            for recs in batch.values():
                out.extend(recs)
    finally:
        await consumer.stop()
    return out


def unique(text: str) -> str:
    """Text made distinct enough that intake does not link it as a repeat report (重复件)."""
    import uuid

    return f"{text}（报告编号{uuid.uuid4().hex}{uuid.uuid4().hex}）"
