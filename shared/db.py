"""asyncpg pool per service schema and a plain-SQL migration runner applied on start-up."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# Plumbing tables (outbox, inbox) that every service schema carries.
PLUMBING_MIGRATIONS = Path(__file__).parent / "messaging" / "migrations"


def _ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    """A pool whose connections work in the service's own schema."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"onewindow-{schema}"},
    )
    assert pool is not None
    return pool


async def migrate(dsn: str, schema: str, service_migrations: Path) -> list[str]:
    """Apply the plumbing and the service's *.sql files not yet applied, in order, under a lock.

    Returns the versions applied now. Safe to run from several replicas at once.
    """
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
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
    finally:
        await conn.close()
    if applied_now:
        log.info("migrations applied", extra={"schema": schema, "versions": applied_now})
    return applied_now
