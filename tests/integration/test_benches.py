"""The audit and replay benches still run (small and short: seconds), on the test broker and database,
and report each ratio to the limit measured in the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _bench(script: str, *args: str, env: dict[str, str]) -> dict:
    out = Path(env["RESULTS"])
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--results", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ratio" in run.stdout
    return json.loads(out.read_text())


def test_audit_bench(database_url, tmp_path):
    r = _bench("audit_bench.py", "--events", "1000", "--stored", "1000", "--small-batch", "5",
               env={"DATABASE_URL": database_url, "RESULTS": str(tmp_path / "audit.json")})
    for phase, batch in (("ingest", 500), ("ingest_small_batches", 5)):
        i = r[phase]
        assert i["batch"] == batch and i["ratio"] > 0 and i["cpu_ratio"] > 0
        assert i["service"]["client_cpu_us_per_event"] > 0 and i["copy"]["per_s"] > 0
    assert r["timeline"]["stored"] == 1000 and r["timeline"]["p99_ms"] > 0


def test_replay_bench(kafka_bootstrap, database_url, tmp_path):
    r = _bench("replay_bench.py", "--events", "1000",
               env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": database_url,
                    "RESULTS": str(tmp_path / "replay.json")})
    assert r["events"] == 1000 and r["raw_read_cpu_us_per_record"] > 0
    for phase in ("copy_to_file", "copy_to_sandbox", "rebuild_audit"):
        assert r[phase]["ratio"] > 0 and r[phase]["cpu_us_per_record"] > 0
