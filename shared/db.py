"""asyncpg pool per service schema, a plain-SQL migration runner applied on start-up, and each
service's own login role with the grants of its schema (least privilege)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from shared.refusals import Overloaded

log = logging.getLogger(__name__)

# Plumbing tables (outbox, inbox) that every service schema carries.
PLUMBING_MIGRATIONS = Path(__file__).parent / "messaging" / "migrations"
# The plumbing's grants, applied before a service's own `grants.sql` (beside its migrations folder).
PLUMBING_GRANTS = Path(__file__).parent / "messaging" / "grants.sql"
GRANTS_FILE = "grants.sql"
# psql-style placeholders in grants files: :"schema" and :"role" (quoted identifiers).
_PLACEHOLDER = re.compile(r':"(schema|role)"')


def _ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def service_role(service: str) -> str:
    """The PostgreSQL role a service runs as: `onewindow_<service>`."""
    return f"onewindow_{service}"


def login_url(dsn: str, user: str) -> str:
    """`dsn` with its user replaced and its password dropped (same server, database and options)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k not in ("user", "password")])
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", query=query))


class PoolTimeout(Overloaded, TimeoutError):
    """No pooled connection within the acquire timeout. A TimeoutError, so consumers treat it as an
    outage (back off, re-read); an HTTP route answers 503 with Retry-After."""


class DatabaseUnavailable(Overloaded, ConnectionError):
    """No connection to PostgreSQL could be made (it is down, restarting or not yet accepting). An
    OSError, so consumers treat it as an outage (back off, read again); an HTTP route answers 503 with
    Retry-After — one line, not a 500 with a traceback for every request while the database is away."""


class _Acquire:
    """asyncpg's acquire context with the pool's default timeout, raising PoolTimeout when it expires."""

    def __init__(self, inner, timeout: float | None) -> None:
        self._inner, self._timeout = inner, timeout

    async def _timed(self, acquiring):
        try:
            return await acquiring
        except TimeoutError as exc:
            if self._timeout is None:
                raise  # a connection attempt's own timeout, not the pool's
            raise PoolTimeout(f"no database connection within {self._timeout:g} s") from exc
        except (OSError, asyncpg.exceptions.CannotConnectNowError) as exc:
            raise DatabaseUnavailable(f"no connection to the database: {type(exc).__name__}",
                                      title="Database unavailable") from exc

    async def __aenter__(self):
        return await self._timed(self._inner.__aenter__())

    async def __aexit__(self, *exc_info):
        return await self._inner.__aexit__(*exc_info)

    def __await__(self):
        return self._timed(self._inner).__await__()


class Connection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one round trip saved per acquire. Safe because nothing here keeps session state: locks
    are transaction-level (pg_advisory_xact_lock), settings SET LOCAL, and there is no LISTEN or
    cursor outside a transaction; asyncpg still rolls back an open transaction on release."""

    def get_reset_query(self) -> str:
        return ""


class Pool(asyncpg.Pool):
    """asyncpg's pool whose `acquire` (and so fetch, execute, ...) waits at most `acquire_timeout`."""

    def __init__(self, *args, acquire_timeout: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None):
        """A connection, waiting at most `timeout` (default: the pool's acquire timeout)."""
        timeout = self._acquire_timeout if timeout is None else timeout
        return _Acquire(super().acquire(timeout=timeout), timeout)


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 8,
                      acquire_timeout: float | None = None, statement_timeout_ms: int | None = None) -> asyncpg.Pool:
    """A pool whose connections work in the service's own schema; with `acquire_timeout` a request
    for a connection fails (PoolTimeout) instead of waiting for ever, with `statement_timeout_ms`
    PostgreSQL cancels a statement that runs longer."""
    server_settings = {"search_path": schema, "application_name": f"onewindow-{schema}"}
    if statement_timeout_ms is not None:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    pool = Pool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=Connection,
        record_class=asyncpg.Record,
        server_settings=server_settings,
    )
    await pool
    return pool


async def ensure_login_role(conn: asyncpg.Connection, role: str) -> bool:
    """Create `role` (LOGIN, no password) unless it exists; False when this login may not create roles
    (an administrator then creates it). Roles are cluster-wide and databases migrate in parallel:
    another migrator creating it at the same moment is fine."""
    if await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
        return True
    try:
        await conn.execute(f"CREATE ROLE {_ident(role)} LOGIN")
    except (asyncpg.exceptions.DuplicateObjectError, asyncpg.exceptions.UniqueViolationError):
        pass  # created concurrently (a concurrent CREATE ROLE fails with either error)
    except asyncpg.exceptions.InsufficientPrivilegeError:
        log.warning("cannot create the service's role; create it as an administrator",
                    extra={"role": role, "statement": f"CREATE ROLE {role} LOGIN"})
        return False
    return True


async def _apply_grants(conn: asyncpg.Connection, schema: str, role: str, files: list[Path]) -> None:
    """Revoke everything the role holds in the schema, then run the grants files (the files are the
    whole truth: a privilege dropped from a file is gone after the next migrate)."""
    s, r = _ident(schema), _ident(role)
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        await conn.execute(f"REVOKE ALL ON ALL {kind} IN SCHEMA {s} FROM {r}")
    await conn.execute(f"REVOKE ALL ON SCHEMA {s} FROM {r}")
    names = {"schema": s, "role": r}
    for path in files:
        if path.is_file():
            await conn.execute(_PLACEHOLDER.sub(lambda m: names[m[1]], path.read_text(encoding="utf-8")))


async def migrate(dsn: str, schema: str, service_migrations: Path, *, role: str | None = None) -> list[str]:
    """Apply the plumbing and the service's *.sql files not yet applied, in order, under a lock; then,
    with `role`, make sure the role exists and apply the grants (shared/messaging/grants.sql and the
    service's grants.sql) at every run, so tables added by new migrations are covered.

    `dsn` is the schema owner's login. Returns the versions applied now. Safe to run from several
    replicas at once.
    """
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        grant = role is not None and await ensure_login_role(conn, role)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"onewindow-migrate-{schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
            await conn.execute(f"SET LOCAL search_path TO {_ident(schema)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            files = [("shared", p) for p in sorted(PLUMBING_MIGRATIONS.glob("*.sql"))]
            files += [(schema, p) for p in sorted(service_migrations.glob("*.sql"))]
            for prefix, path in files:
                version = f"{prefix}/{path.stem}"
                if version in done:
                    continue
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", version)
                applied_now.append(version)
            if grant:
                await _apply_grants(conn, schema, role, [PLUMBING_GRANTS, service_migrations.parent / GRANTS_FILE])
    finally:
        await conn.close()
    if applied_now:
        log.info("migrations applied", extra={"schema": schema, "versions": applied_now})
    return applied_now
