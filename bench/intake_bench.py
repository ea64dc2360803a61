"""Intake benchmark: POST /v1/cases against a bare ASGI endpoint, same machine, same load generator.

    .venv/bin/python bench/intake_bench.py [--duration 10] [--connections 64] [--processes 1,2] [--rounds 3]
        [--results FILE]

Starts what it needs (embedded Tansu and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
are set), then, round after round, drives the bare ASGI app (bench/bare_asgi.py, one uvicorn
process) and intake with each process count (`onewindow run intake --processes N`) with wrk and
bench/submit.lua (loopback only, bounded in time). Per run: requests/s, latency, the CPU
milliseconds per request of the server's processes (psutil; intake's include its group writer,
outbox relay and consumers), of PostgreSQL and of wrk itself. Timing on a shared machine is noisy,
so the rounds alternate the endpoints and the table shows medians; the ratio intake / bare is taken
within each round. Tracing is sampled as deployed (OTEL_TRACES_SAMPLER=parentbased_traceidratio,
OTEL_TRACES_SAMPLER_ARG=0.01) unless the environment says otherwise. Writes
bench/results/intake-<date>-<time>.json. Installs wrk from Debian if it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

from shared import devstack
from shared.identity import LocalIssuer

HERE = Path(__file__).parent
ISSUER = LocalIssuer(Path(tempfile.mkdtemp(prefix="onewindow-bench-issuer-")))
TOKEN = ISSUER.mint("bench", "clerk", ["*"])
SAMPLING = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _postgres(data_directory: str | None) -> list[psutil.Process]:
    """The processes of the PostgreSQL server in `data_directory` (none when it runs elsewhere)."""
    for p in psutil.process_iter(["cmdline"]):
        if data_directory and data_directory in (p.info["cmdline"] or []):
            return _tree(p.pid)
    return []


async def _data_directory(dsn: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT current_setting('data_directory', true)")
    except asyncpg.PostgresError:  # not a superuser: PostgreSQL's CPU is not measured
        return None
    finally:
        await conn.close()


def wrk(url: str, duration: int, connections: int) -> tuple[str, float]:
    """wrk's report and the CPU seconds wrk itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(HERE / "submit.lua"), url,
         "--", TOKEN],
        capture_output=True, text=True, check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name: str, pid: int, url: str, duration: int, connections: int, postgres: list[psutil.Process]) -> dict:
    """One wrk run against a server whose processes are under `pid`."""
    processes = _tree(pid)
    cpu0, pg0, t0 = _cpu(processes), _cpu(postgres), time.monotonic()
    out, wrk_cpu = wrk(url, duration, connections)
    cpu1, pg1, t1 = _cpu(processes), _cpu(postgres), time.monotonic()

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "endpoint": name,
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / max(requests, 1), 3),
        "server_cores_busy": round((cpu1 - cpu0) / (t1 - t0), 2),
        "postgres_cpu_ms_per_request": round((pg1 - pg0) * 1000 / max(requests, 1), 3),
        "wrk_cpu_ms_per_request": round(wrk_cpu * 1000 / max(requests, 1), 3),
        "processes": len(processes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (1-120)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (1-512)")
    parser.add_argument("--processes", default="1,2", help="intake process counts to measure, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each measuring every endpoint (1-20)")
    parser.add_argument("--compare-with", type=Path, metavar="CHECKOUT",
                        help="also run intake (one process) from this checkout of an earlier commit, each round")
    parser.add_argument("--results", type=Path, help="where to write the JSON (default bench/results/intake-<time>.json)")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.processes.split(",") if n.strip()})
    if not (1 <= args.duration <= 120 and 1 <= args.connections <= 512 and 1 <= args.rounds <= 20
            and counts and all(1 <= n <= 16 for n in counts)):
        parser.error("duration 1-120 s, connections 1-512, rounds 1-20, processes 1-16")
    if not shutil.which("wrk"):  # Debian's; a fresh machine may need its package lists first
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"]).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    sampling = {k: os.environ.get(k, v) for k, v in SAMPLING.items()}
    # uvicorn (bare ASGI and the services alike) takes httptools and uvloop when they are installed
    # (pip install '.[fast]'), else h11 and asyncio's loop
    server = {"http": "httptools" if importlib.util.find_spec("httptools") else "h11",
              "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"}

    work = Path(tempfile.mkdtemp(prefix="onewindow-bench-"))
    bootstrap, base_dsn, broker = devstack.local_broker_and_database(work)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ONEWINDOW_LOG_LEVEL": "WARNING", **ISSUER.env(), **sampling}
    postgres = _postgres(asyncio.run(_data_directory(base_dsn)))
    runs: list[dict] = []
    stored: dict[int, int] = {}
    try:
        for round_ in range(1, args.rounds + 1):
            runs.append({**_bare(args, postgres), "round": round_})
            for n in counts:
                result, count = _intake(args, env, base_dsn, n, work, postgres)
                runs.append({**result, "round": round_})
                stored[n] = stored.get(n, 0) + count
            if args.compare_with:
                result, _ = _intake(args, env, base_dsn, 1, work, postgres, checkout=args.compare_with)
                runs.append({**result, "round": round_})
    finally:
        if broker:
            broker.stop()

    summary = {}
    names = ["bare ASGI", *[f"intake x{n}" for n in counts]] + (["intake x1 (earlier)"] if args.compare_with else [])
    for name in names:
        mine = [r for r in runs if r["endpoint"] == name]
        summary[name] = {k: round(statistics.median(r[k] for r in mine), 3) for k in (
            "requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request", "server_cores_busy",
            "postgres_cpu_ms_per_request", "wrk_cpu_ms_per_request")}
        summary[name]["non_2xx"] = sum(r["non_2xx"] for r in mine)
        if name != "bare ASGI":
            pairs = [(r, next(b for b in runs if b["endpoint"] == "bare ASGI" and b["round"] == r["round"]))
                     for r in mine]
            summary[name]["ratio_to_bare"] = round(statistics.median(
                r["requests_per_s"] / b["requests_per_s"] for r, b in pairs), 3)
    print(f"\nintake benchmark: wrk, {args.connections} connections, {args.duration} s per run, {args.rounds} rounds,"
          f" loopback; medians; tracing {sampling['OTEL_TRACES_SAMPLER']} {sampling['OTEL_TRACES_SAMPLER_ARG']};"
          f" uvicorn with {server['http']} and {server['loop']}")
    print(f"{'endpoint':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'cores':>7}"
          f"{'PG ms/req':>11}{'wrk ms/req':>12}{'vs bare':>9}{'non-2xx':>9}")
    for name, r in summary.items():
        print(f"{name:<20}{r['requests_per_s']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['cpu_ms_per_request']:>12.3f}{r['server_cores_busy']:>7.2f}{r['postgres_cpu_ms_per_request']:>11.3f}"
              f"{r['wrk_cpu_ms_per_request']:>12.3f}{r.get('ratio_to_bare', 1):>9.3f}{r['non_2xx']:>9}")
    print(f"cases stored (at least every request answered; cut-off requests in flight may add some): {stored}")
    earlier = None
    if args.compare_with:
        earlier = subprocess.run(["git", "-C", str(args.compare_with), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip() or str(args.compare_with)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "connections": args.connections, "earlier": earlier,
              "duration_s": args.duration, "rounds": args.rounds, "tracing": sampling, "server": server, "cores": os.cpu_count(),
              "load_average_at_end": os.getloadavg(), "summary": summary, "runs": runs, "cases_stored": stored}
    out = args.results or HERE / "results" / f"intake-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}")


def _bare(args, postgres: list[psutil.Process]) -> dict:
    port = devstack.free_port()
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "bare_asgi:app",
                             "--port", str(port), "--log-level", "warning", "--no-access-log"])
    try:
        devstack.wait_for_port("127.0.0.1", port)
        url = f"http://127.0.0.1:{port}/v1/cases"
        wrk(url, 2, args.connections)  # warm-up
        return measure("bare ASGI", bare.pid, url, args.duration, args.connections, postgres)
    finally:
        bare.terminate()
        bare.wait()


def _intake(args, env: dict, base_dsn: str, processes: int, work: Path, postgres: list[psutil.Process],
            checkout: Path | None = None) -> tuple[dict, int]:
    """One run of intake as `processes` processes (or, from an earlier `checkout`, as it ran there) on a
    fresh database; its result and the cases stored (at least every request answered 202)."""
    dsn = asyncio.run(devstack.create_database(base_dsn, "onewindow_bench"))
    port = devstack.free_port()
    name = "intake x1 (earlier)" if checkout else f"intake x{processes}"
    command = ["run", "intake", "--port", str(port)] + ([] if checkout else ["--processes", str(processes)])
    intake = devstack.ServiceProcess(name, command, {**env, "DATABASE_URL": dsn}, port,
                                     work / f"intake-{processes}{'-earlier' if checkout else ''}.log")
    if checkout:  # its own code first on the path: `python -m` puts the working directory there
        intake.proc = subprocess.Popen([sys.executable, "-m", "services.cli", *command], cwd=checkout,
                                       env={**os.environ, **intake.env}, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, preexec_fn=devstack._die_with_parent)
    else:
        intake.start()
    try:
        intake.wait_ready(90)
        time.sleep(2 if processes > 1 else 0)  # every process past its start-up
        url = f"http://127.0.0.1:{port}/v1/cases"
        wrk(url, 2, args.connections)  # warm-up
        before = asyncio.run(_count(dsn))
        result = measure(name, intake.proc.pid, url, args.duration, args.connections,
                         _tree(postgres[0].pid) if postgres else [])  # with the backends of this run
        time.sleep(0.5)  # wrk cut off requests in flight: let them land
        stored = asyncio.run(_count(dsn)) - before
        if stored < result["requests"]:
            raise SystemExit(f"{name}: {result['requests']} requests answered, {stored} cases stored")
        return result, stored
    finally:
        intake.stop()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM intake.cases")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
