"""The whole system as real processes on the test broker and database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared import devstack
from tests.conftest import CLERK, ISSUER, OPERATOR, read_topic


FOREIGN_UNIT = "police-339902004"


def eventually(predicate, timeout: float = 45.0, what: str = "the condition"):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds:
    the services answer from different topics, so what a test waits for arrives in its own time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    """Handles on the running processes plus helpers the tests share."""

    def __init__(self, procs: list[devstack.ServiceProcess], env: dict[str, str], log_dir: Path):
        self.procs = {p.name: p for p in procs}
        self.env = env
        self.log_dir = log_dir

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.procs[service].port}"

    def submit(self, body: dict, headers: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url('intake')}/v1/cases", json=body, headers={**CLERK, **(headers or {})}, timeout=10)

    def timeline(self, case_id: str) -> list[dict]:
        r = httpx.get(f"{self.url('audit')}/v1/cases/{case_id}/timeline", headers=OPERATOR, timeout=10)
        return r.json()["events"] if r.status_code == 200 else []

    def wait_timeline(self, case_id: str, last_type: str, timeout: float = 30.0) -> list[dict]:
        """Poll the audit timeline until its last event has `last_type`."""
        deadline = time.monotonic() + timeout
        events: list[dict] = []
        while time.monotonic() < deadline:
            events = self.timeline(case_id)
            if events and events[-1]["type"] == last_type:
                return events
            time.sleep(0.2)
        raise AssertionError(f"case {case_id}: timeline ends {[e['type'] for e in events]}, expected {last_type}")

    def callback(self, case_id: str, satisfied: bool = True, note: str | None = None) -> httpx.Response:
        """The command centre's 回访 through the router's operator API."""
        return httpx.post(f"{self.url('router')}/v1/cases/{case_id}/callback", headers=OPERATOR, timeout=10,
                          json={"satisfied": satisfied, "note": note})

    def close_case(self, case_id: str, timeout: float = 30.0) -> list[dict]:
        """Wait until the callback is due (the lead unit resolved the case), record a satisfied
        callback, and wait for the closure in audit."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.callback(case_id)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            assert r.status_code in (404, 409), r.text  # not routed yet / not resolved yet
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        return self.wait_timeline(case_id, "org.onewindow.case.closed.v1", timeout)

    def sql(self, query: str, *args):
        async def run():
            conn = await asyncpg.connect(self.env["DATABASE_URL"])
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def read_topic(self, topic: str) -> list:
        """Every record on a topic."""
        return asyncio.run(read_topic(self.env["KAFKA_BOOTSTRAP_SERVERS"], topic))


# The console's sign-in at the test issuer's (fictional) authorization server: tests/e2e/test_console*
# answer its endpoints inside the browser.
OIDC_AUTHORIZE = f"{ISSUER.issuer}/authorize"
OIDC_TOKEN = f"{ISSUER.issuer}/token"


def console_env(ports: dict[str, int]) -> dict[str, str]:
    """The console as `onewindow dev` runs it (token form on), plus an OIDC client."""
    return {**devstack.console_env(ports, dev_signin=True), "ONEWINDOW_CONSOLE_OIDC_CLIENT_ID": "onewindow-console",
            "ONEWINDOW_CONSOLE_OIDC_AUTHORIZATION_ENDPOINT": OIDC_AUTHORIZE,
            "ONEWINDOW_CONSOLE_OIDC_TOKEN_ENDPOINT": OIDC_TOKEN}


@pytest.fixture(scope="session")
def stack(service_env: dict[str, str], workdir: Path):
    ports = {name: devstack.free_port() for name in devstack.SERVICE_PORTS}
    log_dir = workdir / "logs"
    service_env = {**service_env, **console_env(ports)}
    # The police station of 马坪镇 is played by the tests' own "foreign" department system.
    procs = devstack.service_processes(service_env, log_dir, simulator=True, ports=ports,
                                       simulator_args=["--skip-units", FOREIGN_UNIT])
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.wait_ready(90)
        yield Stack(procs, service_env, log_dir)
    finally:
        for p in reversed(procs):
            p.stop()
