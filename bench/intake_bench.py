"""Intake benchmark: accepted cases/s and latency beside a bare ASGI JSON endpoint, same machine, same run.

    .venv/bin/python bench/intake_bench.py [--duration 10] [--connections 32]

Starts what it needs (embedded Tansu and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
are set), drives both endpoints with wrk (loopback only, bounded in time), prints one table and
writes bench/results/intake-<time>.json. Installs wrk from Debian if it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from shared import devstack
from shared.identity import LocalIssuer

HERE = Path(__file__).parent
ISSUER = LocalIssuer(Path(tempfile.mkdtemp(prefix="onewindow-bench-issuer-")))
TOKEN = ISSUER.mint("bench", "clerk", ["*"])


def wrk(url: str, duration: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(HERE / "submit.lua"), url,
         "--", TOKEN],
        capture_output=True, text=True, check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (1-120)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (1-512)")
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 1 <= args.connections <= 512):
        parser.error("duration must be 1-120 s and connections 1-512")
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)

    work = Path(tempfile.mkdtemp(prefix="onewindow-bench-"))
    bootstrap, base_dsn, broker = devstack.local_broker_and_database(work)
    dsn = asyncio.run(devstack.create_database(base_dsn, "onewindow_bench"))
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": dsn, "ONEWINDOW_LOG_LEVEL": "WARNING",
           **ISSUER.env()}
    intake_port, bare_port = devstack.free_port(), devstack.free_port()
    intake = devstack.ServiceProcess("intake", ["run", "intake", "--port", str(intake_port)], env, intake_port,
                                     work / "intake.log").start()
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "bare_asgi:app",
                             "--port", str(bare_port), "--log-level", "warning", "--no-access-log"])
    try:
        intake.wait_ready(60)
        devstack.wait_for_port("127.0.0.1", bare_port)
        wrk(f"http://127.0.0.1:{bare_port}/v1/cases", 2, args.connections)  # warm-up
        wrk(f"http://127.0.0.1:{intake_port}/v1/cases", 2, args.connections)
        bare_r = wrk(f"http://127.0.0.1:{bare_port}/v1/cases", args.duration, args.connections)
        intake_r = wrk(f"http://127.0.0.1:{intake_port}/v1/cases", args.duration, args.connections)
        stored = asyncio.run(_count(dsn))
    finally:
        intake.stop()
        bare.terminate()
        bare.wait()
        if broker:
            broker.stop()

    ratio = intake_r["requests_per_s"] / bare_r["requests_per_s"]
    print(f"\nintake benchmark: {args.connections} connections, {args.duration} s each, loopback, wrk")
    print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, r in (("bare ASGI (physical limit)", bare_r), ("intake POST /v1/cases", intake_r)):
        print(f"{name:<28}{r['requests_per_s']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['non_2xx']:>10}")
    print(f"ratio intake / bare: {ratio:.2f} (goal >= 0.5); cases stored: {stored}")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "connections": args.connections,
              "duration_s": args.duration, "bare_asgi": bare_r, "intake": intake_r, "ratio": round(ratio, 3),
              "cases_stored": stored}
    out = HERE / "results" / f"intake-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}")


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM intake.cases")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
