"""The `onewindow` command: run a service, the department simulator, or the whole embedded stack."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from services.drill.cli import bench as bench_command
from services.drill.cli import drill as drill_command
from services.replay.cli import offsets_app, replay_app
from services.router.cli import router_app
from shared import devstack
from shared.identity import ROLES, LocalIssuer
from shared.settings import DEV_ENV

app = typer.Typer(help="OneWindow: one window intake, back-office dispatch.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
contracts_app = typer.Typer(help="Contracts for integrating systems: JSON Schemas, AsyncAPI.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(replay_app, name="replay")
app.add_typer(offsets_app, name="offsets")
app.add_typer(router_app, name="router")
app.command("drill")(drill_command)
app.command("bench")(bench_command)


class ServiceName(StrEnum):
    intake = "intake"
    router = "router"
    mediation = "mediation"
    audit = "audit"


@app.command()
def run(
    service: Annotated[ServiceName, typer.Argument(help="which service to run")],
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="HTTP port (default: the service's own)")] = None,
    host: Annotated[str, typer.Option(envvar="ONEWINDOW_HOST", help="address to listen on")] = "127.0.0.1",
    processes: Annotated[int, typer.Option(
        min=1, max=64, envvar="ONEWINDOW_PROCESSES",
        help="intake only: worker processes sharing the port, one core each (each a full intake: HTTP, "
             "group writer, outbox relay, consumers)")] = 1,
) -> None:
    """Run one service as this process (HTTP API/health + its Kafka consumers); intake as N processes
    with --processes N."""
    import uvicorn

    if processes > 1 and service is not ServiceName.intake:
        # the others scale out as replicas (docs/deployment.md): their HTTP work is light
        raise typer.BadParameter(f"only intake runs as several processes (not {service.value})",
                                 param_hint="--processes")
    uvicorn.run(
        f"services.{service.value}.entry:create_app",
        factory=True,
        host=host,
        port=port or devstack.SERVICE_PORTS[service.value],
        log_config=None,
        timeout_graceful_shutdown=25,
        workers=processes if processes > 1 else None,
    )


@app.command()
def simulate(
    kinds: Annotated[str, typer.Option(help="comma-separated unit kinds to play")] = "police,court,petition,grid",
    accept_delay: Annotated[float, typer.Option(min=0, max=3600, help="seconds before signing for a batch")] = 0.1,
    resolve_delay: Annotated[float, typer.Option(min=0, max=3600, help="seconds before resolving it")] = 0.2,
    skip_units: Annotated[str, typer.Option(help="comma-separated unit ids played by real systems instead")] = "",
) -> None:
    """Play the external departments: accept and resolve every dispatch of the given kinds."""
    from services.simulator.main import main as simulator_main
    from shared.topics import UnitKind

    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in chosen if k not in {u.value for u in UnitKind}]
    if bad or not chosen:
        raise typer.BadParameter(f"unknown unit kind(s): {', '.join(bad) or '(none given)'}", param_hint="--kinds")
    simulator_main(chosen, accept_delay, resolve_delay, {u.strip() for u in skip_units.split(",") if u.strip()})


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int, typer.Option(min=1, max=1000, help="partitions per topic")] = 3,
    replication: Annotated[int, typer.Option(min=1, max=10, help="replication factor")] = 1,
) -> None:
    """Create every OneWindow topic that is missing (retention per topic: shared/topics.py)."""
    from shared.settings import tool_settings
    from shared.topics import ALL_TOPICS, ensure_topics, topic_config

    s = tool_settings()
    asyncio.run(ensure_topics(s.kafka_bootstrap_servers, partitions, replication=replication,
                              **s.kafka_client_options()))
    for t in ALL_TOPICS:
        typer.echo(f"{t}\t{topic_config(t)}")


@contracts_app.command("schemas")
def contracts_schemas(
    out: Annotated[Path | None, typer.Option(help="directory (default: shared/contracts/schemas)")] = None,
    release: Annotated[bool, typer.Option(help="also record them as the released baseline")] = False,
) -> None:
    """Write the JSON Schema of every event type."""
    from shared.contracts import schemas

    for path in schemas.write_schemas(out or schemas.SCHEMA_DIR):
        typer.echo(str(path))
    if release:
        schemas.write_schemas(schemas.RELEASED_DIR)


@contracts_app.command("asyncapi")
def contracts_asyncapi(
    out: Annotated[Path, typer.Option(help="directory to write the documents to")] = Path("asyncapi"),
) -> None:
    """Write the AsyncAPI 3 documents: one per service and one per department."""
    from shared.contracts import asyncapi

    for path in asyncapi.write_documents(out):
        typer.echo(str(path))


@contracts_app.command("topology")
def contracts_topology(
    root: Annotated[Path, typer.Option(help="the project's root")] = Path("."),
) -> None:
    """Regenerate what is derived from the topology (shared/topics.py): the Kafka ACL script and the
    topic table of docs/events.md. A test fails while either differs from the topology."""
    from shared import topics

    acls = root / "deploy" / "kafka-acls.sh"
    acls.write_text(topics.acl_script(), encoding="utf-8")
    events = root / "docs" / "events.md"
    events.write_text(topics.with_events_table(events.read_text(encoding="utf-8")), encoding="utf-8")
    typer.echo(f"{acls}\n{events}")


audit_app = typer.Typer(help="The audit trace.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    case: Annotated[str | None, typer.Option(help="verify one case's chain only")] = None,
    schema: Annotated[str, typer.Option(help="the audit schema")] = "audit",
    checkpoint: Annotated[bool, typer.Option(help="sign a checkpoint of the heads first")] = False,
) -> None:
    """Verify the trace: hash chains, the chain of signed checkpoints, the append-only triggers; exit 1
    listing the findings (the first broken record of each chain among them)."""
    from services.audit import handlers as audit
    from shared.db import create_pool
    from shared.settings import tool_settings

    s = tool_settings()
    try:
        key = s.signing_key()
    except ValueError as exc:
        typer.echo(f"onewindow: {exc}", err=True)
        raise typer.Exit(2) from None

    async def run() -> dict:
        pool = await create_pool(s.database_url, schema, min_size=1, max_size=1)
        try:
            if checkpoint:
                async with pool.acquire() as conn, conn.transaction():
                    await audit.take_checkpoint(conn, key, s.audit_key_id)
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                return await audit.verify(conn, key, case, checkpoint_seconds=s.audit_checkpoint_seconds)
        finally:
            await pool.close()

    result = asyncio.run(run())
    typer.echo(json.dumps(result, ensure_ascii=False))
    raise typer.Exit(0 if result["intact"] else 1)


@app.command()
def token(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    subject: Annotated[str, typer.Option(help="who the token speaks for (a person's or a system's id)")],
    division: Annotated[list[str], typer.Option(help="a division code prefix it may act in (repeat; * = all)")],
    unit: Annotated[str | None, typer.Option(help="the unit a department's or unit's system speaks for")] = None,
    ttl_minutes: Annotated[int, typer.Option(min=1, max=7 * 24 * 60)] = 12 * 60,
    state_dir: Annotated[Path, typer.Option(help="the state directory of `onewindow dev`")] = Path(".onewindow"),
) -> None:
    """Sign a development token with `onewindow dev`'s local issuer (production tokens come from the
    city's identity provider)."""
    if role not in ROLES:
        typer.echo(f"unknown role {role!r}: one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    if not (state_dir / "issuer" / "issuer-key.pem").is_file():
        typer.echo(f"no local issuer in {state_dir}: start `onewindow dev` there first", err=True)
        raise typer.Exit(2)
    issuer = LocalIssuer(state_dir.resolve() / "issuer")
    typer.echo(issuer.mint(subject, role, division, unit=unit, ttl_seconds=ttl_minutes * 60))


@app.command()
def dev(
    state_dir: Annotated[Path, typer.Option(help="where the embedded PostgreSQL keeps its data")] = Path(".onewindow"),
    broker_port: Annotated[int, typer.Option(min=1, max=65535)] = 9092,
    port_offset: Annotated[int, typer.Option(min=0, max=50000, help="added to every service port")] = 0,
) -> None:
    """Start the embedded stack: broker, PostgreSQL, the four services and the simulator. Ctrl-C stops all."""
    state_dir = state_dir.resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {}
    broker = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        typer.echo(f"starting the Tansu broker on 127.0.0.1:{broker_port} …")
        broker = devstack.EmbeddedBroker(broker_port, state_dir / "logs" / "broker.log").start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    if not os.environ.get("DATABASE_URL"):
        typer.echo(f"starting PostgreSQL in {state_dir / 'pgdata'} …")
        env["DATABASE_URL"] = devstack.embedded_postgres_dsn(state_dir / "pgdata")
    if "ONEWINDOW_DATABASE_LOGIN_PER_SERVICE" not in os.environ:
        # DATABASE_URL is the owner's (it migrates; the tools read with it); each service logs in as its role
        env["ONEWINDOW_DATABASE_LOGIN_PER_SERVICE"] = "true"
    tokens = {}
    if not (os.environ.get("ONEWINDOW_AUTH_ISSUER") or os.environ.get("ONEWINDOW_AUTH_JWKS_URL")):
        # a local issuer with a key of this state directory; `onewindow token` signs more tokens with it
        issuer = LocalIssuer(state_dir / "issuer")
        env.update(issuer.env())
        tokens = {role: issuer.mint(f"dev-{role}", role, ["*"]) for role in ("clerk", "operator", "auditor")}
    if not (os.environ.get("ONEWINDOW_AUDIT_SIGNING_KEY") or os.environ.get("ONEWINDOW_AUDIT_SIGNING_KEY_FILE")):
        key_file = state_dir / "audit-signing.key"  # one per state directory: its checkpoints stay verifiable
        if not key_file.is_file():
            key_file.write_text(secrets.token_urlsafe(32), encoding="utf-8")
            key_file.chmod(0o600)
        env["ONEWINDOW_AUDIT_SIGNING_KEY_FILE"] = str(key_file)
    ports = {name: port + port_offset for name, port in devstack.SERVICE_PORTS.items()}
    # the console (audit) calls router and intake; the token form only with the local issuer
    env.update({k: v for k, v in devstack.console_env(ports, dev_signin=bool(tokens)).items() if k not in os.environ})
    procs = devstack.service_processes(env, state_dir / "logs", ports=ports)
    # every other `onewindow` command run in the project reads these addresses (explicit variables win)
    dev_env = Path.cwd() / DEV_ENV
    dev_env.parent.mkdir(parents=True, exist_ok=True)
    addresses = {k: env.get(k) or os.environ.get(k, "") for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    dev_env.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in {**env, **addresses}.items() if v),
                       encoding="utf-8")
    dev_env.chmod(0o600)  # it holds the dev tokens
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready()
        typer.echo("\nOneWindow is up.")
        typer.echo(f"  intake API:   http://127.0.0.1:{ports['intake']}/v1/cases  (docs: /docs)")
        typer.echo(f"  router API:   http://127.0.0.1:{ports['router']}/v1/queues/callback  (回访: POST"
                   " /v1/cases/<case_id>/callback)")
        typer.echo(f"  audit API:    http://127.0.0.1:{ports['audit']}/v1/cases/<case_id>/timeline")
        typer.echo(f"  broker:       {env.get('KAFKA_BOOTSTRAP_SERVERS', os.environ.get('KAFKA_BOOTSTRAP_SERVERS'))}")
        typer.echo(f"  database:     {env.get('DATABASE_URL', os.environ.get('DATABASE_URL'))}")
        typer.echo(f"  (written to {dev_env} for the other onewindow commands)")
        for role, token in tokens.items():
            typer.echo(f"  {role} token: {token}")
        if "operator" in tokens:  # the fragment never reaches a server or its logs
            typer.echo(f"  console:      http://127.0.0.1:{ports['audit']}/v1/console#token={tokens['operator']}")
        typer.echo(f"  logs:         {state_dir / 'logs'}\nCtrl-C stops everything.")
        while not stopping:
            dead = [p.name for p in procs if p.proc and p.proc.poll() is not None]
            if dead:
                typer.echo(f"stopped unexpectedly: {', '.join(dead)} (see the logs)", err=True)
                break
            time.sleep(0.5)
    finally:
        typer.echo("stopping …")
        for p in reversed(procs):
            p.stop()
        if broker:
            broker.stop()
        dev_env.unlink(missing_ok=True)
        typer.echo("stopped.")


class ReportKind(StrEnum):
    daily = "daily"
    monthly = "monthly"
    quarterly = "quarterly"


@app.command()
def report(
    kind: Annotated[ReportKind, typer.Argument(help="daily (日研判 of a county), monthly or quarterly (rankings)")],
    division: Annotated[str, typer.Option(help="county code (6 digits); a town (9) for monthly/quarterly")],
    period: Annotated[str, typer.Option(help="Beijing time: YYYY-MM-DD, YYYY-MM or YYYY-Qn")],
    out: Annotated[Path, typer.Option(help="directory to write the HTML and PDF to")] = Path("reports"),
    schema: Annotated[str, typer.Option(help="audit's schema in DATABASE_URL's database")] = "audit",
) -> None:
    """Write a report as HTML and PDF from audit's database: the same pages audit's API serves
    (GET /v1/reports/...), counting only what the trace holds for the period."""
    import re

    from services.audit import handlers as audit_handlers
    from services.audit import reports
    from shared.db import create_pool
    from shared.settings import tool_settings

    pattern = r"\d{6}" if kind is ReportKind.daily else r"\d{6}(\d{3})?"
    if not re.fullmatch(pattern, division):
        raise typer.BadParameter("a county code (6 digits)" + ("" if kind is ReportKind.daily else
                                                               " or a town code (9 digits)"), param_hint="--division")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise typer.BadParameter("a PostgreSQL schema name", param_hint="--schema")
    try:
        span = reports.period_of(kind.value, period)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--period") from None
    scheme = reports.load_indicators()

    async def page() -> str:
        pool = await create_pool(tool_settings().database_url, schema, min_size=1, max_size=2)
        try:
            if kind is ReportKind.daily:
                from services.audit import storage

                content = await storage.stored_digest(pool, division, span.first_day)
                if content is None:
                    content = await audit_handlers.make_digest(pool, division, span.first_day, scheme)
                return reports.digest_html(content)
            return reports.report_html(await audit_handlers.make_report(pool, span, division, scheme))
        finally:
            await pool.close()

    html = asyncio.run(page())
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{kind.value}-{division}-{span.label}"
    stem.with_suffix(".html").write_text(html, encoding="utf-8")
    stem.with_suffix(".pdf").write_bytes(reports.pdf(html))
    typer.echo(f"{stem}.html\n{stem}.pdf")


def main() -> None:
    """Console entry point: a broker or database that cannot be reached is one line and exit 2."""
    import logging

    # Without a configured handler Python prints these libraries' connection retries and unclosed
    # clients to stderr; the tools say what failed themselves. Services configure logging (shared/logs.py).
    for noisy in ("aiokafka", "asyncio"):
        logging.getLogger(noisy).addHandler(logging.NullHandler())
    try:
        app()
    except Exception as exc:
        if (reason := unreachable(exc)) is None:
            raise
        typer.echo(f"onewindow: {reason}", err=True)
        raise SystemExit(2) from None


def unreachable(exc: BaseException) -> str | None:
    """Why a tool could not reach the broker or the database, in one line; None for other errors."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError

    hint = (f"set KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL, or start `onewindow dev` here "
            f"(it writes its addresses to {DEV_ENV})")
    if isinstance(exc, KafkaConnectionError):
        return f"cannot reach the Kafka broker ({exc}); {hint}"
    if isinstance(exc, (OSError, asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.InvalidCatalogNameError,
                        asyncpg.exceptions.InvalidAuthorizationSpecificationError)):
        return f"cannot reach the database or the broker ({type(exc).__name__}: {exc}); {hint}"
    if isinstance(exc, asyncpg.exceptions.UndefinedTableError):
        return f"the database has no OneWindow tables ({exc}): is it the stack's database? {hint}"
    return None


if __name__ == "__main__":
    main()
