"""Intake under back-pressure, in process on a real PostgreSQL (no broker: intake's window works
without Kafka): when its write queue is full, or no database connection comes within the acquire
timeout, it answers 503 with Retry-After as problem details at once, instead of hanging; what it
accepted is written once the database moves again. It runs as its own role (onewindow_intake)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
import httpx
import pytest

from services.intake.entry import create_app
from shared import devstack
from shared.settings import Settings
from tests.conftest import CLERK, ISSUER, unique

DIVISION = "339901001001"


@pytest.fixture
def intake_database(new_database) -> str:
    return new_database()


@pytest.fixture(autouse=True)
def _keep_logging():
    """The service's start-up installs its JSON log handler on the root logger: put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def _body() -> dict:
    return {"channel": "hotline", "description": unique("楼道里堆满杂物，影响通行"), "location": {"division_code": DIVISION}}


def _busy(r: httpx.Response, why: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["type"] == "https://onewindow.example/problems/busy" and why in r.json()["detail"]


async def _wait_for_a_blocked_writer(owner: asyncpg.Connection) -> None:
    """Until the writer's transaction waits for the division's lock held by the test."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await owner.fetchval("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                                " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.usename = 'onewindow_intake'"
                                " AND a.datname = current_database()"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the writer never waited for the lock")


async def test_a_full_queue_or_a_dry_pool_is_answered_503_with_retry_after(intake_database):
    settings = Settings(_env_file=None, database_url=intake_database, database_login_per_service=True,
                        kafka_bootstrap_servers=f"127.0.0.1:{devstack.free_port()}",  # nothing there
                        auth_issuer=ISSUER.issuer, auth_jwks_file=ISSUER.jwks_file, intake_queue_max=1, db_pool_min=1, db_pool_max=2,
                        db_acquire_timeout_seconds=0.5, outbox_poll_seconds=60)
    app = create_app(settings)
    owner = await asyncpg.connect(intake_database)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake", timeout=20) as client:
        pool = app.state.runtime.pool
        assert await pool.fetchval("SELECT current_user") == "onewindow_intake"
        assert await pool.fetchval("SELECT current_setting('statement_timeout')") == "30s"
        # the test holds the division's duplicate-detection lock: the writer's first group waits for it
        lock = owner.transaction()
        await lock.start()
        await owner.execute("SELECT pg_advisory_xact_lock(hashtext('intake-duplicates:' || $1))", DIVISION)
        first = asyncio.create_task(client.post("/v1/cases", json=_body(), headers=CLERK))
        await _wait_for_a_blocked_writer(owner)
        second = asyncio.create_task(client.post("/v1/cases", json=_body(), headers=CLERK))  # the queue's place
        await asyncio.sleep(0.2)
        started = time.monotonic()
        _busy(await client.post("/v1/cases", json=_body(), headers=CLERK), "queue is full")  # refused at once
        assert time.monotonic() - started < 1

        # the writer holds one connection; the test takes the other: a read gets none in time
        held = await pool.acquire(timeout=10)
        try:
            started = time.monotonic()
            _busy(await client.get(f"/v1/cases/{uuid.uuid4()}", headers=CLERK), "no database connection")
            assert 0.4 < time.monotonic() - started < 5  # the acquire timeout, not a hang
        finally:
            await pool.release(held)

        await lock.rollback()  # the database moves again: both waiting submissions are written
        accepted = [await first, await second]
        assert [r.status_code for r in accepted] == [202, 202], [r.text for r in accepted]
        assert (await client.get(f"/v1/cases/{accepted[0].json()['case_id']}", headers=CLERK)).status_code == 200
    await owner.close()
