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
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS",) and not k.startswith("ONEWINDOW_AUTH_")}
    env["DATABASE_URL"] = new_database()  # its own: the test stack must not share its outboxes
    env["PYTHONPATH"] = str(Path(__file__).parents[2])  # the code beside this test, whatever the cwd
    out = tmp_path / "dev.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--state-dir", str(tmp_path / "state"),
         "--broker-port", str(devstack.free_port()), "--port-offset", str(offset)],
        env=env, stdout=open(out, "wb"), stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    dev_env = tmp_path / ".onewindow" / "dev.env"
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

        # the console: a sign-in link (token in the fragment), and router answers it across origins
        link = re.search(r"console:\s+(http://\S+)#token=(\S+)", out.read_text())
        assert link and link.group(1) == f"{audit}/v1/console" and link.group(2) == operator
        router = re.search(r"router API:\s+(http://\S+)/v1/queues", text).group(1)
        preflight = httpx.options(f"{router}/v1/queues/manual", headers={
            "Origin": audit, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
        assert preflight.headers.get("access-control-allow-origin") == audit
        config = httpx.get(f"{audit}/v1/console/config.json").json()
        assert config["services"]["router"] == router and config["signin"]["dev_token"] is True

        # the tools run in the project find the stack's addresses without being told
        broker = re.search(r"broker:\s+(\S+)", text).group(1)
        assert re.search(r"database:\s+postgresql://", text)
        assert f"KAFKA_BOOTSTRAP_SERVERS={broker}" in dev_env.read_text()
        tool_env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
        history = subprocess.run([sys.executable, "-m", "services.cli", "replay", "case", case_id], cwd=tmp_path,
                                 env=tool_env, capture_output=True, text=True, timeout=120)
        assert "case.received" in history.stdout and "dispatch.resolved" in history.stdout, history.stderr

        # `onewindow token` signs more tokens with the stack's own issuer; a county's operator sees its county only
        county = subprocess.run([sys.executable, "-m", "services.cli", "token", "--role", "operator", "--subject",
                                 "op-xishan", "--division", "339902", "--state-dir", str(tmp_path / "state")],
                                cwd=tmp_path, env=tool_env, capture_output=True, text=True, timeout=60)
        assert county.returncode == 0, county.stderr
        seen = httpx.get(f"{audit}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {county.stdout.strip()}"})
        assert seen.status_code == 404  # a case of 339901 does not exist for 339902's operator
        assert httpx.get(f"{audit}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {operator}"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, out.read_text()
    assert not dev_env.exists()  # a stopped stack leaves no addresses to follow
    time.sleep(0.5)
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"orphans left behind: {alive}"


def test_a_tool_that_cannot_reach_the_broker_says_so_in_one_line(tmp_path: Path):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{devstack.free_port()}"}
    r = subprocess.run([sys.executable, "-m", "services.cli", "offsets", "show", "--group", "router"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("onewindow: cannot reach the Kafka broker"), r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_a_tool_pointed_at_another_database_says_so_in_one_line(new_database, tmp_path: Path):
    env = {**os.environ, "DATABASE_URL": new_database(), "ONEWINDOW_AUDIT_SIGNING_KEY": "k"}
    r = subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("onewindow: the database has no OneWindow tables"), r.stderr
    assert r.stderr.count("\n") == 1
