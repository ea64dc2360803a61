"""With the broker down, intake keeps accepting cases; they all go out once the broker is back."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from shared import devstack
from shared.cloudevents import decode
from tests.conftest import CLERK, ISSUER, read_topic, unique

pytestmark = pytest.mark.e2e


def test_intake_accepts_while_the_broker_is_down_and_drains_when_it_returns(new_database, workdir):
    broker_port, http_port = devstack.free_port(), devstack.free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}", "DATABASE_URL": new_database(),
           **ISSUER.env(), "ONEWINDOW_OUTBOX_POLL_SECONDS": "0.5"}
    intake = devstack.ServiceProcess("intake-outage", ["run", "intake", "--port", str(http_port)], env, http_port,
                                     workdir / "logs" / "intake-outage.log").start()
    broker = devstack.EmbeddedBroker(broker_port, workdir / "logs" / "outage-broker.log")
    try:
        intake.wait_ready(60)  # ready without any broker
        case_ids = []
        for _ in range(10):
            r = httpx.post(f"http://127.0.0.1:{http_port}/v1/cases", headers=CLERK, timeout=10, json={
                "channel": "window", "description": unique("小区路面塌陷"), "location": {"division_code": "339902001002"}})
            assert r.status_code == 202, r.text
            case_ids.append(r.json()["case_id"])
        time.sleep(1)
        broker.start()
        deadline, got = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            got = asyncio.run(read_topic(broker.bootstrap_servers, "intake.cases"))
            if len(got) >= 10:
                break
            time.sleep(0.5)
        subjects = [decode(r.key, r.value, r.headers).subject for r in got]
        assert sorted(subjects) == sorted(case_ids), "every case accepted during the outage is published once"
    finally:
        intake.stop()
        broker.stop()
