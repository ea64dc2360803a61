"""Least privilege in PostgreSQL, on a real server: migrate creates each service's login role
(onewindow_<service>) and grants it its own schema only; audit's login may read and append its trace
but never rewrite, delete, truncate it or switch its triggers off; a table a later audit migration
adds starts append-only; the role is created once however many migrators race; pools time out."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest

from services.audit import handlers as audit
from services.audit.entry import MIGRATIONS as AUDIT
from services.intake.entry import MIGRATIONS as INTAKE
from services.mediation.entry import MIGRATIONS as MEDIATION
from services.router.entry import MIGRATIONS as ROUTER
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchProgress
from shared.db import PoolTimeout, create_pool, ensure_login_role, login_url, migrate, service_role
from shared.messaging.consumer import BatchProcessor, Inbound

SCHEMAS = {"intake": INTAKE, "router": ROUTER, "mediation": MEDIATION, "audit": AUDIT}
DENIED = asyncpg.exceptions.InsufficientPrivilegeError


@pytest.fixture(scope="module")
def own_database(new_database) -> str:
    return new_database()


@pytest.fixture(scope="module")
async def db(own_database: str) -> str:
    """A database of its own with the four schemas migrated as the owner, each granted to its role."""
    await asyncio.gather(*(migrate(own_database, s, m, role=service_role(s)) for s, m in SCHEMAS.items()))
    return own_database


async def _login(dsn: str, service: str, schema: str | None = None) -> asyncpg.Connection:
    """A connection as the service's own role, in its schema (as the service's pool makes them)."""
    return await asyncpg.connect(login_url(dsn, service_role(service)),
                                 server_settings={"search_path": schema or service})


def _progress(case_id: uuid.UUID, i: int) -> Inbound:
    data = DispatchProgress(case_id=case_id, dispatch_id=uuid.uuid4(), unit_id="police-339901001", note=f"进展{i}")
    ev = CloudEvent.of(data, source="/test", event_id=f"{case_id}-{i}")
    return Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=i), ev, None)


async def test_audit_login_appends_but_cannot_rewrite_delete_truncate_or_switch_off_triggers(db):
    pool = await create_pool(login_url(db, service_role("audit")), "audit")
    try:
        assert await pool.fetchval("SELECT current_user") == "onewindow_audit"
        # what the service does, as its role: inbox, trace, summaries (upsert), outbox, checkpoint
        processor = BatchProcessor(name="audit", pool=pool, producer=None, relay=None,
                                   handle=audit.record_events, validate_contracts=False)
        case = uuid.uuid4()
        await processor.apply([_progress(case, 0), _progress(case, 1)])
        await processor.apply([_progress(case, 2)])
        async with pool.acquire() as conn, conn.transaction():
            assert (await audit.take_checkpoint(conn, b"key", "t"))["events"] == 3
        assert await pool.fetchval("SELECT events FROM case_summaries WHERE case_id = $1", str(case)) == 3

        async with pool.acquire() as conn:
            for table in ("events", "checkpoints", "dead_letters"):
                for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                    with pytest.raises(DENIED):  # refused on privileges, before the append-only trigger
                        await conn.execute(statement)
            for statement in ("ALTER TABLE events DISABLE TRIGGER events_append_only",
                              "ALTER TABLE events DISABLE TRIGGER ALL",
                              "DROP TRIGGER checkpoints_append_only ON checkpoints",
                              "ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only",
                              "CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql"
                              " AS $$ BEGIN RETURN NEW; END $$",
                              "INSERT INTO schema_migrations (version) VALUES ('audit/9999_fake')",
                              "CREATE TABLE sneaky (x int)"):
                with pytest.raises(DENIED):
                    await conn.execute(statement)
            # not a member of the owner either: it cannot take the owner's rights
            with pytest.raises(DENIED):
                await conn.execute("SET ROLE postgres")
    finally:
        await pool.close()


async def test_a_service_login_reaches_no_other_schema(db):
    other = {"intake": "router.cases", "router": "intake.cases", "mediation": "intake.cases",
             "audit": "intake.cases"}
    for service, table in other.items():
        conn = await _login(db, service)
        try:
            with pytest.raises(DENIED):
                await conn.fetch(f"SELECT * FROM {table}")
            with pytest.raises(DENIED):
                await conn.fetch("SELECT * FROM audit.events" if service != "audit" else "SELECT * FROM router.clocks")
            with pytest.raises(DENIED):  # nor write into another service's outbox
                target = "router" if service != "router" else "mediation"
                await conn.execute(f"INSERT INTO {target}.outbox (event_id, topic, key, value, headers)"
                                   " VALUES ('x', 't', '', '', '{}')")
        finally:
            await conn.close()

    intake = await _login(db, "intake")
    try:
        assert await intake.fetchval("SELECT count(*) FROM cases") == 0  # its own: yes
        await intake.execute("UPDATE cases SET status = status")  # the submitter's status moves
        for statement in ("UPDATE cases SET description = ''", "UPDATE cases SET reporter_phone = NULL",
                          "DELETE FROM cases", "TRUNCATE cases"):
            with pytest.raises(DENIED):  # a submission itself is never rewritten or removed
                await intake.execute(statement)
    finally:
        await intake.close()


async def test_a_table_a_later_audit_migration_adds_starts_append_only(db, tmp_path: Path):
    # audit's migrations plus one more (as 0007 adds a checkpoint chain), with audit's grants.sql
    migrations = tmp_path / "audit" / "migrations"
    shutil.copytree(AUDIT, migrations)
    shutil.copy(AUDIT.parent / "grants.sql", tmp_path / "audit" / "grants.sql")
    (migrations / "0999_checkpoint_chain.sql").write_text(
        "CREATE TABLE checkpoint_chain (id bigserial PRIMARY KEY, digest bytea NOT NULL);")
    schema = f"audit_{secrets.token_hex(3)}"
    await migrate(db, schema, migrations, role=service_role("audit"))
    assert await migrate(db, schema, migrations, role=service_role("audit")) == []  # again: grants re-applied
    conn = await _login(db, "audit", schema)
    try:
        await conn.execute("INSERT INTO checkpoint_chain (digest) VALUES ('\\x00')")
        assert await conn.fetchval("SELECT count(*) FROM checkpoint_chain") == 1
        for statement in ("UPDATE checkpoint_chain SET digest = '\\x01'", "DELETE FROM checkpoint_chain",
                          "TRUNCATE checkpoint_chain"):
            with pytest.raises(DENIED):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_role_is_created_once_however_many_migrators_race(db):
    role = f"onewindow_test_{secrets.token_hex(4)}"
    conns = [await asyncpg.connect(db) for _ in range(6)]
    try:
        assert await asyncio.gather(*(ensure_login_role(c, role) for c in conns)) == [True] * 6
        assert await conns[0].fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
        assert await conns[0].fetchval("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = $1", role)
    finally:
        await conns[0].execute(f'DROP ROLE IF EXISTS "{role}"')
        for c in conns:
            await c.close()


async def test_a_pool_gives_up_on_a_slow_statement_and_on_a_full_pool(db):
    pool = await create_pool(login_url(db, service_role("intake")), "intake", min_size=1, max_size=1,
                             acquire_timeout=0.3, statement_timeout_ms=200)
    try:
        with pytest.raises(asyncpg.exceptions.QueryCanceledError):
            await pool.execute("SELECT pg_sleep(2)")
        async with pool.acquire():
            with pytest.raises(PoolTimeout) as busy:
                await pool.fetchval("SELECT 1")  # the only connection is taken
            assert isinstance(busy.value, TimeoutError)  # consumers treat it as an outage
            with pytest.raises(PoolTimeout):
                async with pool.acquire():
                    pass
        assert await pool.fetchval("SELECT 1") == 1  # and it recovers once a connection is back
    finally:
        await pool.close()
