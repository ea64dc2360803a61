"""`onewindow drill`: fault drills, each on its own private stack, with an account of every case."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def drill(
    name: Annotated[list[str] | None, typer.Option("--drill", help="a drill to run (repeatable); default: all")] = None,
    cases: Annotated[int, typer.Option(min=5, max=2000, help="cases offered per drill")] = 60,
    seed: Annotated[int, typer.Option(help="seed of the fault timing")] = 1,
    results: Annotated[Path | None, typer.Option(help="write the results as JSON here")] = None,
) -> None:
    """Kill -9 each service, pause a consumer past its session (a rebalance), restart PostgreSQL,
    restart the broker, poison every consumed topic — each while cases flow — then print, per drill,
    cases offered, accepted, recorded, lost and duplicated. Exit 1 if a drill the design claims to
    survive lost or duplicated anything."""
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
        typer.echo(f"drill {n}: {cases} cases …", err=True)
        out.append(run_drill(n, cases, seed))
    t = Table("drill", "claimed", "offered", "accepted", "recorded", "lost", "duplicated", "dead letters", "seconds", "result",
              "what happened", title="fault drills")
    for r in out:
        t.add_row(r.drill, "yes" if r.claimed else "no", str(r.offered), str(r.accepted), str(r.recorded),
                  str(r.lost), str(r.duplicated), str(r.dead_letters), f"{r.seconds:.0f}",
                  "ok" if r.passed else "FAILED", r.note, style=None if r.passed else "red")
    Console(width=200).print(t)
    path = results or Path("bench/results") / f"drill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(as_json(out), encoding="utf-8")
    typer.echo(f"written: {path}")
    raise typer.Exit(0 if all(r.passed for r in out) else 1)
