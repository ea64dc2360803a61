"""Intake as several processes on one port (`onewindow run intake --processes 2`), on the real broker and
PostgreSQL: both processes take requests, every case is accepted and stored once — retries of one
Idempotency-Key racing into both processes included — and announced once on intake.cases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import psutil
import pytest

from shared import devstack
from shared.cloudevents import decode
from tests.conftest import CLERK, ISSUER, read_topic, unique
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

CASES, RETRIED = 120, 20  # RETRIED of them are sent twice at once, with one Idempotency-Key


def _body(i: int) -> dict:
    return {"channel": "hotline", "description": unique(f"路灯不亮第{i}处"),
            "location": {"division_code": f"3399{1 + i % 2:02d}00{1 + i % 4}00{1 + i % 3}"}}


async def _submit_all(url: str, parent: int, port: int) -> tuple[list[tuple[int, httpx.Response]], set[int]]:
    """Every answer, and the processes that held the connections (16 clients, a connection each)."""
    clients = [httpx.AsyncClient(base_url=url, headers=CLERK, timeout=30) for _ in range(16)]
    try:
        bodies = [_body(i) for i in range(CASES)]

        async def send(i: int, client: httpx.AsyncClient, key: str | None) -> tuple[int, httpx.Response]:
            return i, await client.post("/v1/cases", json=bodies[i], headers={"Idempotency-Key": key} if key else {})

        sends = []
        for i in range(CASES):
            key = f"processes-{uuid.uuid4()}" if i < RETRIED else None
            sends.append(send(i, clients[i % 16], key))
            if key:  # the same submission again, at the same moment, on another connection
                sends.append(send(i, clients[(i + 7) % 16], key))
        answers = await asyncio.gather(*sends)
        return answers, _serving(parent, port)  # while the connections are open
    finally:
        for client in clients:
            await client.aclose()


def test_two_intake_processes_accept_and_persist_every_case_once(kafka_bootstrap, new_database, workdir):
    database, port = new_database(), devstack.free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": database, **ISSUER.env(),
           "ONEWINDOW_OUTBOX_POLL_SECONDS": "0.5", "ONEWINDOW_DATABASE_LOGIN_PER_SERVICE": "true",
           "ONEWINDOW_PROCESSES": "2"}  # the flag's variable: --processes 2
    intake = devstack.ServiceProcess("intake-processes", ["run", "intake", "--port", str(port)], env, port,
                                     workdir / "logs" / "intake-processes.log").start()
    try:
        intake.wait_ready(90)
        log = workdir / "logs" / "intake-processes.log"
        eventually(lambda: log.read_text(errors="replace").count('"service started"') == 2, timeout=60,
                   what="both intake processes started")
        answers, serving = asyncio.run(_submit_all(f"http://127.0.0.1:{port}", intake.proc.pid, port))
        assert all(r.status_code == 202 for _, r in answers), [r.text for _, r in answers if r.status_code != 202][:3]
        by_submission: dict[int, set[str]] = {}
        for i, r in answers:
            by_submission.setdefault(i, set()).add(r.json()["case_id"])
        assert all(len(ids) == 1 for ids in by_submission.values()), "a retry is told the first answer"
        case_ids = {ids.pop() for ids in by_submission.values()}
        assert len(case_ids) == CASES
        assert len(serving) == 2, "both processes took connections"

        rows = asyncio.run(_fetch(database, "SELECT case_id::text AS id, case_number FROM intake.cases"))
        assert {r["id"] for r in rows} == case_ids and len(rows) == CASES, "stored once each"
        assert len({r["case_number"] for r in rows}) == CASES, "case numbers never shared between processes"

        def announced():
            # the session's topic also holds other tests' records, poison among them: only this test's cases
            mine = [decode(r.key, r.value, r.headers) for r in asyncio.run(read_topic(kafka_bootstrap, "intake.cases"))
                    if (r.key or b"").decode(errors="replace") in case_ids]
            return mine if len(mine) >= CASES else None

        events = eventually(announced, timeout=60, what="every case announced on intake.cases")
        time.sleep(2)  # anything published twice would arrive by now
        events = announced()
        assert Counter(e.subject for e in events) == Counter({c: 1 for c in case_ids}), "announced once each"
        unsent = asyncio.run(_fetch(database, "SELECT count(*) AS n FROM intake.outbox WHERE published_at IS NULL"))
        assert unsent[0]["n"] == 0
    finally:
        assert intake.stop() == 0  # both processes stop gracefully


def _serving(parent: int, port: int) -> set[int]:
    """The processes under `parent` with an established connection on the service's port."""
    serving = set()
    for child in psutil.Process(parent).children(recursive=True):
        try:
            if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
                   for c in child.net_connections("tcp")):
                serving.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return serving


async def _fetch(database: str, query: str):
    import asyncpg

    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()
