"""The intake bench still runs (one short round, on a broker and database of its own: its thousands of
cases must not reach the session's router and its queues): bare ASGI and intake as one and two
processes under wrk, with CPU per request and the ratio to bare ASGI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared import devstack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]


def test_intake_bench(new_database, tmp_path):
    out = tmp_path / "intake.json"
    broker = devstack.EmbeddedBroker(devstack.free_port(), tmp_path / "broker.log").start()
    try:
        run = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "intake_bench.py"), "--duration", "2", "--connections", "16",
             "--processes", "1,2", "--rounds", "1", "--results", str(out)],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "DATABASE_URL": new_database(),
                 "PYTHONPATH": str(ROOT)})
    finally:
        broker.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert set(r["summary"]) == {"bare ASGI", "intake x1", "intake x2"}
    for name, s in r["summary"].items():
        assert s["requests_per_s"] > 0 and s["cpu_ms_per_request"] > 0 and s["non_2xx"] == 0, name
    assert 0 < r["summary"]["intake x1"]["ratio_to_bare"] < 1
    assert all(r["cases_stored"][n] >= run_["requests"] for n in ("1", "2")
               for run_ in r["runs"] if run_["endpoint"] == f"intake x{n}")
