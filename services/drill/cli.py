"""`onewindow drill`: fault drills, each on its own private stack, with an account of every case."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def drill(
    name: Annotated[list[str] | None, typer.Option("--drill", help="a drill to run (repeatable); default: all")] = None,
    cases: Annotated[int, typer.Option(min=5, max=20_000, help="cases offered per drill")] = 60,
    rate: Annotated[float, typer.Option(min=0.5, max=500, help="new cases offered per second while the fault "
                                                                "happens (open loop; retries come on top)")] = 5.0,
    seed: Annotated[int, typer.Option(help="seed of the fault timing")] = 1,
    results: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
) -> None:
    """Kill -9 each service, pause a consumer past its session (a rebalance), restart PostgreSQL,
    restart the broker, poison every consumed topic — each while cases are offered at `--rate` per
    second, striking between 20 % and 40 % of the load — then print, per drill, cases offered, the
    rate offered and accepted, lost, duplicated and the recovery time. Exit 1 if a drill the design
    claims to survive lost or duplicated anything."""
    from rich.console import Console
    from rich.table import Table

    from services.drill.drills import DRILLS, as_json, run_drill

    chosen = list(dict.fromkeys(name or DRILLS))
    unknown = [n for n in chosen if n not in DRILLS]
    if unknown:
        typer.echo(f"error: unknown drill(s) {', '.join(unknown)}; known: {', '.join(DRILLS)}", err=True)
        raise typer.Exit(2)
    out = []
    for n in chosen:
        typer.echo(f"drill {n}: {cases} cases at {rate:g}/s …", err=True)
        out.append(run_drill(n, cases, seed, rate))
    t = Table("drill", "claimed", "offered", "offered/s", "accepted/s", "accepted", "recorded", "lost", "duplicated",
              "dead letters", "fault at s", "recovery s", "batches over 2+ partitions", "seconds", "result",
              "what happened", title=f"fault drills ({cases} cases at {rate:g}/s)")
    for r in out:
        several = sum(g["several_partitions"] for g in r.batches.values())
        batches = sum(g["batches"] for g in r.batches.values())
        t.add_row(r.drill, "yes" if r.claimed else "no", str(r.offered), f"{r.offered_per_s:.1f}",
                  f"{r.accepted_per_s:.1f}", str(r.accepted), str(r.recorded), str(r.lost), str(r.duplicated),
                  str(r.dead_letters), "-" if not r.fault_window else f"{r.fault_window[0]:.1f}–{r.fault_window[1]:.1f}",
                  "-" if r.recovery_seconds is None else f"{r.recovery_seconds:.1f}", f"{several}/{batches}",
                  f"{r.seconds:.0f}", "ok" if r.passed else "FAILED", r.note, style=None if r.passed else "red")
    Console(width=240).print(t)
    path = results or Path("bench/results") / f"drill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(as_json(out), encoding="utf-8")
    typer.echo(f"written: {path}")
    raise typer.Exit(0 if all(r.passed for r in out) else 1)


def bench(
    rate: Annotated[float, typer.Option(min=1, max=2000, help="fixed offered load, cases/s")] = 100,
    seconds: Annotated[float, typer.Option(min=2, max=120, help="length of each load phase")] = 10,
    workers: Annotated[int, typer.Option(min=1, max=256, help="concurrent clients at saturation")] = 32,
    relay_records: Annotated[int, typer.Option(min=1000, max=200_000, help="records through the raw relay")] = 50_000,
    results: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
    profile: Annotated[Path | None, typer.Option(help="write a py-spy flame graph (SVG) of each service at "
                                                      "saturation into this folder")] = None,
    processes: Annotated[list[int] | None, typer.Option(min=1, max=16, help="processes per service (repeat: "
                                                        "--processes 1 --processes 2 runs saturation with each)")] = None,
) -> None:
    """End to end on a private stack (loopback, bounded): cases/s and p50/p99 intake→dispatch and
    intake→audit at a fixed offered load and at saturation, beside a raw aiokafka 4-hop relay, a bare
    ASGI endpoint and PostgreSQL COPY measured in the same run; peak memory per service."""
    import json

    from services.drill.bench import run_bench

    r = run_bench(rate, seconds, workers, relay_records, profile, tuple(processes or [1]))
    f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [f"{'':34}{'cases/s':>10}{'dispatch p50':>14}{'dispatch p99':>14}{'audit p50':>11}{'audit p99':>11}"]
    for name, label in (("fixed", f"system, offered {rate:g}/s"), ("saturation", f"system, saturation ({workers} clients)")):
        p = r["phases"][name]
        lines.append(f"{label:34}{f(p['dispatched_per_s']):>10}{f(p['intake_to_dispatch']['p50_ms']):>14}"
                     f"{f(p['intake_to_dispatch']['p99_ms']):>14}{f(p['intake_to_audit']['p50_ms']):>11}"
                     f"{f(p['intake_to_audit']['p99_ms']):>11}")
    lim = r["limits"]
    relay = lim["raw_relay_4_hops"]
    lines.append(f"{'limit: raw aiokafka relay, 4 hops':34}{f(relay['per_s']):>10}{f(relay['p50_ms']):>14}"
                 f"{f(relay['p99_ms']):>14}   (steady; its feed alone: {f(relay['generator_per_s'])} records/s)")
    lines.append(f"{'limit: bare ASGI (requests/s)':34}{f(lim['bare_asgi']['per_s']):>10}")
    lines.append(f"{'limit: PostgreSQL COPY (rows/s)':34}{f(lim['postgres_copy']['per_s']):>10}")
    sat = r["phases"]["saturation"]
    lines.append(f"intake accepted at saturation: {f(sat['accepted_per_s'])}/s; errors {sat['errors']}")
    ratios = r["ratios"]
    lines.append(f"records a case makes the broker carry: {f(sat['records_per_case'], 1)}; at saturation "
                 f"{f(sat['broker_records_per_s'])} records/s, {f(ratios['case_records_vs_raw_relay'], 2)} of the "
                 f"relay's end-to-end records/s (goal >= 0.5), {f(ratios['case_records_vs_relay_broker_records'], 2)} "
                 f"of its broker records/s ({f(relay['broker_records_per_s'])})")
    lines.append(f"ratio end to end / raw relay: {f(ratios['end_to_end_vs_raw_relay'], 2)} (cases/s beside records/s); "
                 f"intake / bare ASGI: {f(ratios['intake_vs_bare_asgi'], 2)}")
    if len(r["processes"]) > 1:
        lines.append("saturation by processes per service: " + "; ".join(
            f"{n}: {f(p['dispatched_per_s'])} cases/s, dispatch p99 {f(p['intake_to_dispatch']['p99_ms'])} ms, "
            f"{f(p['cpu_ms_per_case']['services_total'], 2)} ms CPU per case" for n, p in r["processes"].items()))
    lines.append("peak RSS MiB: " + ", ".join(f"{k} {v}" for k, v in r["peak_rss_mib"].items()))
    parts = ("intake", "router", "mediation", "audit", "services_total", "broker", "postgres")
    lines.append(f"{'CPU ms per case':34}" + "".join(f"{'4 services' if p == 'services_total' else p:>11}"
                                                        for p in parts))
    for name in ("fixed", "saturation"):
        cost = r["phases"][name]["cpu_ms_per_case"]
        lines.append(f"{'  ' + name:34}" + "".join(f"{f(cost.get(p), 2):>11}" for p in parts))
    typer.echo("\n".join(lines))
    path = results or Path("bench/results") / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **r}, indent=2), encoding="utf-8")
    typer.echo(f"written: {path}")
