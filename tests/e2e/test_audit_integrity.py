"""An audit process of its own (own Tansu broker, own database, a live-feed cap of two): feeds over
the cap answered 503 with Retry-After, and the console's verdict on a case turning when a trigger
of the trace is switched off (the verdict is the verification's: chain, checkpoints, triggers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from services.audit import handlers
from shared import devstack
from shared.cloudevents import CloudEvent
from shared.contracts import CaseReceived
from shared.contracts.asyncapi import example
from shared.db import create_pool
from shared.messaging.consumer import Inbound
from tests.conftest import ISSUER, OPERATOR, TOKENS, auth
from tests.e2e.test_console import CHROMIUM_ARGS

pytestmark = pytest.mark.e2e
AUDITOR = auth("auditor-token-0001")
KEY = "lone-audit-signing-key"


@pytest.fixture(scope="module")
def lone_audit(new_database, workdir: Path):
    """Audit alone on a broker and a database of its own, at most two live feeds at once."""
    broker = devstack.EmbeddedBroker(devstack.free_port(), workdir / "logs" / "lone-broker.log").start()
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "DATABASE_URL": new_database(),
           **ISSUER.env(), "ONEWINDOW_AUDIT_SIGNING_KEY": KEY,
           "ONEWINDOW_FEED_MAX_CONNECTIONS": "2", "ONEWINDOW_CONSOLE_DEV_SIGNIN": "true"}
    port = devstack.free_port()
    proc = devstack.ServiceProcess("audit", ["run", "audit", "--port", str(port)], env, port,
                                   workdir / "logs" / "lone-audit.log").start()
    try:
        proc.wait_ready(90)
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", env=env)
    finally:
        proc.stop()
        broker.stop()


def _open_feeds(url: str, clients: list[httpx.Client], headers: dict) -> list[httpx.Response]:
    """A live feed per client, held open (the answer's head read, the stream not)."""
    return [c.send(c.build_request("GET", url, headers=headers), stream=True) for c in clients]


def test_live_feeds_over_the_cap_are_answered_503_with_retry_after(lone_audit):
    url = f"{lone_audit.url}/v1/events/stream"
    clients = [httpx.Client(timeout=10) for _ in range(3)]
    try:
        first, second = _open_feeds(url, clients[:2], OPERATOR)
        assert (first.status_code, second.status_code) == (200, 200)
        over = _open_feeds(url, clients[2:], AUDITOR)[0]  # whoever asks
        assert over.status_code == 503 and over.headers["retry-after"] == "5"
        over.read()
        assert over.headers["content-type"] == "application/problem+json"
        assert over.json()["status"] == 503 and over.json()["title"] == "Too many live feeds"
        first.close()
        second.close()
        # both slots come back once the server sees the feeds gone
        deadline = time.monotonic() + 15
        while True:
            again = _open_feeds(url, clients[:2], OPERATOR)
            codes = [r.status_code for r in again]
            for r in again:
                r.close()
            if codes == [200, 200] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert codes == [200, 200]
    finally:
        for c in clients:
            c.close()


async def _record_a_case(dsn: str, case_number: str) -> None:
    """A case received, recorded and checkpointed in the lone audit's store as the service does it."""
    data = CaseReceived.model_validate({**example("org.onewindow.case.received.v1"), "case_id": str(uuid.uuid4()),
                                        "case_number": case_number})
    ev = CloudEvent.of(data, source="/onewindow/intake", event_id=str(uuid.uuid4()))
    pool = await create_pool(dsn, "audit")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await handlers.record_events(conn, [Inbound(SimpleNamespace(topic="intake.cases", partition=0, offset=0),
                                                        ev, None)])
        async with pool.acquire() as conn, conn.transaction():
            await handlers.take_checkpoint(conn, KEY.encode(), "test")
    finally:
        await pool.close()


def _sql(dsn: str, statement: str) -> None:
    """One statement as the database owner (in a thread of its own: Playwright runs a loop in this one)."""
    async def run() -> None:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "audit"})
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_the_console_verdict_turns_when_a_trigger_is_switched_off(lone_audit):
    dsn = lone_audit.env["DATABASE_URL"]
    case_number = f"339901-20261123-{uuid.uuid4().int % 100000:05d}"
    asyncio.run(_record_a_case(dsn, case_number))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{lone_audit.url}/v1/console")
            page.fill("#token", TOKENS["operator-token-0001"])
            page.click("#connect")
            page.click("#lang")  # in English (Chinese by default)
            page.click("#nav button[data-view=case]")
            page.fill("#number", case_number)
            page.click("#search")
            expect(page.locator("#verified")).to_have_text("trace intact", timeout=10_000)
            expect(page.locator("#findings li")).to_have_count(0)

            _sql(dsn, "ALTER TABLE events DISABLE TRIGGER events_append_only")
            try:
                page.click("#search")
                expect(page.locator("#verified")).to_have_text("NOT intact: 1 finding", timeout=10_000)
                expect(page.locator("#findings li")).to_have_count(1)
                expect(page.locator("#findings")).to_contain_text("guard_disabled: trigger events_append_only")
            finally:
                _sql(dsn, "ALTER TABLE events ENABLE TRIGGER events_append_only")
            page.click("#search")
            expect(page.locator("#verified")).to_have_text("trace intact", timeout=10_000)
        finally:
            browser.close()
