"""The audit trace's integrity on a real PostgreSQL, attacked by the database owner: a deleted,
swapped or renumbered checkpoint, the newest checkpoints deleted, TRUNCATE refused, TRUNCATE behind
a dropped trigger, disabled or rewritten triggers; checkpoints from before chaining stay verifiable;
whole-store verification as a background job, one at a time, for auditors only."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest

from services.audit import domain, handlers
from services.audit.api import build_router
from services.audit.entry import MIGRATIONS
from shared.cloudevents import CloudEvent
from shared.contracts import DispatchProgress
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound
from shared.settings import Settings
from tests.conftest import ISSUER, OPERATOR, auth

KEY = b"integrity-key"
AUDITOR = auth("auditor-token-0001")


@pytest.fixture
async def pool(database_url: str):
    schema = f"aint_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def _events(case_id: str, n: int) -> list[Inbound]:
    out = []
    for i in range(n):
        data = DispatchProgress(case_id=uuid.UUID(case_id), dispatch_id=uuid.uuid4(), unit_id="police-339901001",
                                note=f"进展{i}")
        ev = CloudEvent.of(data, source="/test", event_id=str(uuid.uuid4()))
        out.append(Inbound(SimpleNamespace(topic="feedback.police", partition=0, offset=i), ev, None))
    return out


async def _rounds(pool, n: int) -> list[str]:
    """n rounds of: events of a new case and one more existing, then a checkpoint. Returns the cases."""
    cases: list[str] = []
    for _ in range(n):
        cases.append(str(uuid.uuid4()))
        async with pool.acquire() as conn, conn.transaction():
            await handlers.record_events(conn, _events(cases[-1], 3) + _events(cases[0], 1))
        async with pool.acquire() as conn, conn.transaction():
            assert (await handlers.take_checkpoint(conn, KEY, "k1"))["seq"] is not None
    return cases


async def _verify(pool, case_id: str | None = None, seconds: float = 300.0) -> dict:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await handlers.verify(conn, KEY, case_id, checkpoint_seconds=seconds)


def _kinds(result: dict) -> list[tuple[str, int | None]]:
    return sorted((f["kind"], f.get("seq")) for f in result["findings"])


async def _as_owner(pool, *statements: str) -> None:
    """What a database owner may do behind the service's back: switch the row trigger off, act, switch it on."""
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only")
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.execute("ALTER TABLE checkpoints ENABLE TRIGGER checkpoints_append_only")


async def test_checkpoints_are_chained_and_an_untouched_store_is_intact(pool):
    cases = await _rounds(pool, 3)
    rows = await pool.fetch("SELECT seq, prev_signature, signature FROM checkpoints ORDER BY id")
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r["prev_signature"] for r in rows] == [None, rows[0]["signature"], rows[1]["signature"]]
    whole = await _verify(pool, seconds=0.001)  # everything is covered: no staleness however short the interval
    assert whole["intact"] and whole["findings"] == [] and whole["broken"] == []
    assert whole["counts"] == {"cases": 3, "events": 12, "checkpoints": 3, "guards": 6}
    one = await _verify(pool, cases[0])
    assert one["intact"] and one["chain_intact"] and one["records"] == 6


async def test_a_checkpoint_deleted_by_the_owner_is_reported(pool):
    cases = await _rounds(pool, 4)
    await _as_owner(pool, "DELETE FROM checkpoints WHERE seq = 2")
    whole = await _verify(pool)
    assert not whole["intact"] and _kinds(whole) == [("checkpoint_missing", 2)]
    assert "seq 2 is missing" in whole["findings"][0]["detail"]
    one = await _verify(pool, cases[1])  # the console's verdict on any case says so too
    assert one["chain_intact"] and not one["intact"] and _kinds(one) == [("checkpoint_missing", 2)]

    # closing the gap by renumbering the later ones breaks what they signed
    await _as_owner(pool, "UPDATE checkpoints SET seq = seq - 1 WHERE seq > 2")
    kinds = _kinds(await _verify(pool))
    assert ("checkpoint_forged", 2) in kinds and ("checkpoint_forged", 3) in kinds
    assert ("checkpoint_link_broken", 2) in kinds


async def test_swapped_checkpoints_are_reported(pool):
    await _rounds(pool, 4)
    a, b = await pool.fetch("SELECT * FROM checkpoints WHERE seq IN (2, 3) ORDER BY id")
    columns = ["taken_at", "cases", "events", "up_to_id", "digest", "signature", "key_id", "seq", "prev_signature"]
    assign = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    await _as_owner(pool, f"UPDATE checkpoints SET seq = NULL WHERE id = {a['id']}")
    async with pool.acquire() as conn:  # each row takes the other's signed content
        await conn.execute("ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only")
        await conn.execute(f"UPDATE checkpoints SET {assign} WHERE id = $1", b["id"], *[a[c] for c in columns])
        await conn.execute(f"UPDATE checkpoints SET {assign} WHERE id = $1", a["id"], *[b[c] for c in columns])
        await conn.execute("ALTER TABLE checkpoints ENABLE TRIGGER checkpoints_append_only")
    assert [r["seq"] for r in await pool.fetch("SELECT seq FROM checkpoints ORDER BY id")] == [1, 3, 2, 4]
    whole = await _verify(pool)
    assert _kinds(whole) == [("checkpoint_out_of_order", 2)], whole["findings"]


async def test_the_newest_checkpoints_deleted_show_as_events_no_checkpoint_covers(pool):
    await _rounds(pool, 3)
    await _as_owner(pool, "DELETE FROM checkpoints WHERE seq >= 2")
    assert _kinds(await _verify(pool)) == []  # within two intervals: the service would have signed again
    await asyncio.sleep(0.5)
    stale = await _verify(pool, seconds=0.2)
    assert _kinds(stale) == [("checkpoint_stale", 1)]
    assert stale["findings"][0]["detail"].startswith("no checkpoint covers events since ")
    # all of them deleted (or never taken): the same
    await _as_owner(pool, "DELETE FROM checkpoints")
    assert _kinds(await _verify(pool, seconds=0.2)) == [("checkpoint_stale", None)]


async def test_truncate_is_refused_by_the_trigger_even_with_the_row_trigger_off(pool):
    await _rounds(pool, 1)
    async with pool.acquire() as conn:
        for table in ("events", "checkpoints", "dead_letters"):
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
            with pytest.raises(asyncpg.RaiseError, match=rf"append-only \(TRUNCATE refused on {table}\)"):
                await conn.execute(f"TRUNCATE {table} CASCADE")
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
    assert await pool.fetchval("SELECT count(*) FROM events") == 4
    assert await pool.fetchval("SELECT count(*) FROM checkpoints") == 1


async def test_truncate_behind_a_dropped_trigger_is_detected(pool):
    cases = await _rounds(pool, 2)
    async with pool.acquire() as conn:
        await conn.execute("DROP TRIGGER events_no_truncate ON events")
        await conn.execute("TRUNCATE events")
    whole = await _verify(pool)
    assert ("guard_missing", None) in _kinds(whole)
    assert [f["trigger"] for f in whole["findings"] if f["kind"] == "guard_missing"] == ["events_no_truncate"]
    assert _kinds(whole).count(("events_missing", 2)) == 1 and ("checkpoint_heads_changed", 2) in _kinds(whole)

    # the owner puts the trigger back and the service records (and signs) on: the loss still shows
    async with pool.acquire() as conn:
        await conn.execute("CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events"
                           " FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()")
    later = await _rounds(pool, 1)
    whole = await _verify(pool)
    assert {k for k, _ in _kinds(whole)} == {"events_missing", "checkpoint_heads_changed"}
    assert ("events_missing", 1) in _kinds(whole) and ("events_missing", 2) in _kinds(whole)
    one = await _verify(pool, later[0])  # a case recorded since looks fine alone; the store does not
    assert one["chain_intact"] and not one["intact"]
    assert _kinds(one) == [("events_missing", 1), ("events_missing", 2)]
    assert (await _verify(pool, cases[0]))["records"] == 0  # its records went with the rest


async def test_disabled_missing_and_rewritten_triggers_are_reported(pool):
    cases = await _rounds(pool, 1)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("DROP TRIGGER dead_letters_no_truncate ON dead_letters")
    result = await _verify(pool, cases[0])
    assert [(f["kind"], f["trigger"]) for f in result["findings"]] == [
        ("guard_disabled", "events_append_only"), ("guard_missing", "dead_letters_no_truncate")]
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        await conn.execute("CREATE TRIGGER dead_letters_no_truncate BEFORE TRUNCATE ON dead_letters"
                           " FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()")
    assert (await _verify(pool, cases[0]))["intact"]

    # every trigger in place and enabled, but the function they call now lets changes through
    async with pool.acquire() as conn:
        await conn.execute("CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql"
                           " AS $$ BEGIN RETURN OLD; END $$")
        await conn.execute("DELETE FROM dead_letters")  # it does
    result = await _verify(pool)
    assert {(f["kind"], f["trigger"]) for f in result["findings"]} == {
        ("guard_altered", trigger) for _, trigger in domain.APPEND_ONLY_GUARDS}


async def test_checkpoints_from_before_chaining_stay_verifiable(pool, database_url, tmp_path: Path):
    """A store signed before 0007: its checkpoints verify over their digest, the first chained one
    links to the last of them, and that one deleted breaks the link."""
    schema = f"aold_{secrets.token_hex(3)}"
    old = tmp_path / "migrations"
    old.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0007" or path.name[:4] in ("0008", "0009"):  # today's writer needs their columns
            shutil.copy(path, old / path.name)
    await migrate(database_url, schema, old)
    store = await create_pool(database_url, schema)
    try:
        case = str(uuid.uuid4())
        async with store.acquire() as conn, conn.transaction():
            await handlers.record_events(conn, _events(case, 2))
            heads = [(r["case_id"], r["seq"], r["hash"]) for r in await conn.fetch(
                "SELECT DISTINCT ON (case_id) case_id, seq, hash FROM events ORDER BY case_id, seq DESC")]
            digest = domain.checkpoint_digest(heads)  # as the service signed before chaining
            await conn.execute("INSERT INTO checkpoints (cases, events, up_to_id, digest, signature, key_id)"
                               " SELECT 1, 2, max(id), $1, $2, 'k0' FROM events", digest, domain.sign(digest, KEY))
        await migrate(database_url, schema, MIGRATIONS)
        assert await store.fetchval("SELECT count(*) FROM checkpoints WHERE seq IS NULL") == 1
        async with store.acquire() as conn, conn.transaction():
            await handlers.record_events(conn, _events(case, 1))
            assert (await handlers.take_checkpoint(conn, KEY, "k1"))["seq"] == 1
        legacy, chained = await store.fetch("SELECT * FROM checkpoints ORDER BY id")
        assert chained["prev_signature"] == legacy["signature"]
        assert (await _verify(store))["intact"]
        await _as_owner(store, f"DELETE FROM checkpoints WHERE id = {legacy['id']}")
        assert _kinds(await _verify(store)) == [("checkpoint_link_broken", 1)]
    finally:
        await store.close()


def _api(pool, jobs: handlers.VerificationJobs) -> httpx.AsyncClient:
    """Audit's HTTP routes in process over a real database (no broker: these routes read only)."""
    from fastapi import FastAPI

    from shared.http import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(build_router(Settings(auth_issuer=ISSUER.issuer, auth_jwks_file=ISSUER.jwks_file, audit_signing_key=KEY.decode()), jobs))
    app.state.runtime = SimpleNamespace(pool=pool)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit")


async def _done(client: httpx.AsyncClient, location: str) -> dict:
    for _ in range(200):
        job = (await client.get(location, headers=AUDITOR)).json()
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{location} still running")


class _Held:
    """The checkpoints table locked by another session: a verification started meanwhile keeps running."""

    def __init__(self, pool) -> None:
        self.pool = pool

    async def __aenter__(self) -> None:
        self.conn = await self.pool.acquire()
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")

    async def __aexit__(self, *exc) -> None:
        await self.tx.rollback()
        await self.pool.release(self.conn)


async def test_whole_store_verification_is_a_job_one_at_a_time_for_auditors_only(pool):
    await _rounds(pool, 2)
    jobs = handlers.VerificationJobs()
    async with _api(pool, jobs) as client:
        for who in (OPERATOR, auth("operator-token-xishan"), auth("clerk-token-0001")):
            assert (await client.post("/v1/verifications", headers=who)).status_code == 403
        assert (await client.post("/v1/verifications")).status_code == 401

        async with _Held(pool):
            started = await client.post("/v1/verifications", headers=AUDITOR)
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            assert location == f"/v1/verifications/{started.json()['id']}"
            assert started.json()["status"] == "running" and started.json()["requested_by"] == "auditor-1"
            second = await client.post("/v1/verifications", headers=AUDITOR)
            assert second.status_code == 409 and second.headers["content-type"] == "application/problem+json"
            assert second.json()["running"] == location
            assert (await client.get(location, headers=AUDITOR)).json()["status"] == "running"
            assert (await client.get(location, headers=OPERATOR)).status_code == 403
        job = await _done(client, location)
        assert job["status"] == "done" and job["finished_at"]
        assert job["result"]["intact"] and job["result"]["findings"] == []
        assert job["result"]["counts"]["events"] == 8 and job["result"]["checked_at"]

        # the next one starts once that one is done, and sees what the owner did meanwhile
        await _as_owner(pool, "DELETE FROM checkpoints WHERE seq = 1")
        again = await client.post("/v1/verifications", headers=AUDITOR)
        assert again.status_code == 202
        job = await _done(client, again.headers["location"])
        assert not job["result"]["intact"] and _kinds(job["result"]) == [("checkpoint_missing", 1)]
        assert (await client.get(f"/v1/verifications/{uuid.uuid4()}", headers=AUDITOR)).status_code == 404
        assert (await client.get("/v1/verify", headers=AUDITOR)).status_code == 404  # the inline route is gone

        # the service stopping cancels a running job, and its connection comes back to the pool
        async with _Held(pool):
            held = (await client.post("/v1/verifications", headers=AUDITOR)).json()
            await asyncio.sleep(0.2)
            await jobs.cancel()
            stopped = (await client.get(f"/v1/verifications/{held['id']}", headers=AUDITOR)).json()
            assert stopped["status"] == "cancelled" and stopped["finished_at"]
        assert pool.get_idle_size() == pool.get_size()
