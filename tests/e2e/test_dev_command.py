"""`onewindow dev`: one command brings the stack up; Ctrl-C stops all of it, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from shared import devstack

pytestmark = pytest.mark.e2e


def test_dev_brings_the_loop_up_and_ctrl_c_stops_everything(new_database, tmp_path: Path):
    offset = 20000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "ONEWINDOW_TOKENS")}
    env["DATABASE_URL"] = new_database()  # its own: the test stack must not share its outboxes
    out = tmp_path / "dev.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--state-dir", str(tmp_path / "state"),
         "--broker-port", str(devstack.free_port()), "--port-offset", str(offset)],
        env=env, stdout=open(out, "wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "OneWindow is up." not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.3)
        text = out.read_text()
        clerk = re.search(r"clerk token: (\S+)", text).group(1)
        operator = re.search(r"operator token: (\S+)", text).group(1)
        intake = re.search(r"intake API:\s+(http://\S+)/v1/cases", text).group(1)
        audit = f"http://127.0.0.1:{devstack.SERVICE_PORTS['audit'] + offset}"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 6  # broker, four services, simulator

        r = httpx.post(f"{intake}/v1/cases", headers={"Authorization": f"Bearer {clerk}"}, json={
            "channel": "hotline", "description": "小区门口有人打架斗殴", "location": {"division_code": "339901001001"}})
        assert r.status_code == 202, r.text
        case_id = r.json()["case_id"]
        types: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "org.onewindow.dispatch.resolved.v1" not in types:
            t = httpx.get(f"{audit}/v1/cases/{case_id}/timeline", headers={"Authorization": f"Bearer {operator}"})
            types = [e["type"] for e in t.json().get("events", [])] if t.status_code == 200 else []
            time.sleep(0.3)
        assert types[-1] == "org.onewindow.dispatch.resolved.v1"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, out.read_text()
    time.sleep(0.5)
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"orphans left behind: {alive}"
