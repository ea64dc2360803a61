"""Intake's group writes on a real PostgreSQL: numbers continue across groups and never collide
between concurrent writers, repeats and retries are recognised across groups, the events go to the
outbox with the rows, and the submitter's status only moves forward."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from services.intake import domain, handlers
from services.intake.entry import MIGRATIONS
from shared.cloudevents import CloudEvent, derive_id, utcnow
from shared.contracts import CaseRouted, DispatchAccepted, DispatchResolved, ManualTriageRequired
from shared.contracts.submissions import CaseSubmission
from shared.db import create_pool, migrate
from shared.divisions import load_divisions
from shared.messaging.consumer import Inbound

POLICY = domain.DuplicatePolicy()
NOISE = "邻居家每天深夜装修噪音扰民，已经持续一周"
LAMP = "小区东门路灯坏了好几天，晚上很黑"
LEAK = "楼上卫生间漏水渗到我家天花板"


@pytest.fixture
async def pool(database_url: str):  # an intake schema of its own per test
    schema = f"itest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    p = await create_pool(database_url, schema)
    yield p
    await p.close()


def _pending(description: str, *, key: str | None = None, division: str = "339901001001") -> domain.Pending:
    sub = CaseSubmission.model_validate(
        {"channel": "hotline", "description": description, "location": {"division_code": division}},
        context={"divisions": load_divisions()})
    return domain.Pending(sub, key, "clerk-1", None)


async def _accept(pool, *group: domain.Pending, now=None) -> list[domain.Outcome]:
    async with pool.acquire() as conn, conn.transaction():
        return await handlers.accept_submissions(conn, list(group), now or utcnow(), POLICY)


async def test_groups_number_on_link_repeats_and_answer_retries(pool):
    now = utcnow()
    noise, lamp = await _accept(pool, _pending(NOISE, key="key-noise-1"), _pending(LAMP), now=now)
    prefix = domain.case_number_prefix("339901001001", now)
    assert (noise.case_number, lamp.case_number) == (f"{prefix}-00001", f"{prefix}-00002")

    later = now + timedelta(seconds=1)
    again, leak, retry, reused = await _accept(
        pool, _pending(NOISE), _pending(LEAK), _pending(NOISE, key="key-noise-1"), _pending(LEAK, key="key-noise-1"),
        now=later)
    assert again.duplicate and (again.case_id, again.case_number) == (noise.case_id, noise.case_number)
    assert leak.case_number == f"{prefix}-00003" and not leak.duplicate
    assert retry == domain.Outcome(noise.case_id, noise.case_number, noise.submission_id, replayed=True)
    assert reused.conflict

    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT case_id, duplicate_of FROM cases")
        outbox = await conn.fetch("SELECT event_id, topic FROM outbox ORDER BY seq")
        last = await conn.fetchval("SELECT last FROM case_number_counters WHERE prefix = $1", prefix)
    assert len(rows) == 4 and last == 3
    assert [r["duplicate_of"] for r in rows if r["case_id"] == again.submission_id] == [noise.case_id]
    assert [r["event_id"] for r in outbox] == [
        derive_id(domain.SOURCE, noise.case_id, "received"), derive_id(domain.SOURCE, lamp.case_id, "received"),
        derive_id(domain.SOURCE, leak.case_id, "received"), derive_id(domain.SOURCE, again.submission_id, "duplicate")]
    assert {r["topic"] for r in outbox} == {"intake.cases"}


async def test_a_case_another_process_wrote_is_read_from_the_database_and_compared_alike(pool):
    from services.intake import storage

    now = utcnow()
    noise, lamp = await _accept(pool, _pending(NOISE), _pending(LAMP), now=now)
    storage._KNOWN.clear()  # as in a replica (or a restarted process) that never saw these cases
    again, = await _accept(pool, _pending(NOISE), now=now + timedelta(seconds=1))
    assert again.duplicate and again.case_id == noise.case_id
    assert {noise.case_id, lamp.case_id} <= set(storage._KNOWN)  # read once, kept for the next groups
    async with pool.acquire() as conn:  # a case that is no longer open is not a candidate, known or not
        await conn.execute("UPDATE cases SET status = 'closed' WHERE case_id = $1", noise.case_id)
    fresh, = await _accept(pool, _pending(NOISE), now=now + timedelta(seconds=2))
    assert not fresh.duplicate


async def test_concurrent_writers_in_one_county_wait_for_each_other_and_never_share_a_number(pool):
    now = utcnow()
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        (first,) = await handlers.accept_submissions(a, [_pending(NOISE, division="339901001001")], now, POLICY)

        async def other() -> list[domain.Outcome]:
            async with b.transaction():
                return await handlers.accept_submissions(b, [_pending(LAMP, division="339901001002")], now, POLICY)

        waiting = asyncio.create_task(other())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the county's counter is locked until the first group commits
        await tx.commit()
        (second,) = await asyncio.wait_for(waiting, 10)
    prefix = domain.case_number_prefix("339901001001", now)
    assert (first.case_number, second.case_number) == (f"{prefix}-00001", f"{prefix}-00002")


def _status_event(event_type: str, case_id: uuid.UUID, **data) -> Inbound:
    ev = CloudEvent(id=str(uuid.uuid4()), source="/onewindow/router", type=event_type, subject=str(case_id),
                    time=utcnow(), data=data)
    return Inbound(SimpleNamespace(topic="router.decisions", partition=0, offset=0), ev, None)


async def test_the_status_a_submitter_sees_follows_the_shared_rule_across_batches(pool):
    (case,) = await _accept(pool, _pending(NOISE))
    lead, old = str(uuid.uuid4()), str(uuid.uuid4())
    routed = {"assignments": [{"dispatch_id": lead, "unit_id": "mediation-339901001", "role": "lead"}]}
    batches = [
        ([_status_event(CaseRouted.EVENT_TYPE, case.case_id, **routed),
          _status_event(DispatchAccepted.EVENT_TYPE, case.case_id, dispatch_id=lead)], "accepted"),
        # feedback of a dispatch the case is no longer with is history, not status
        ([_status_event(DispatchAccepted.EVENT_TYPE, case.case_id, dispatch_id=old),
          _status_event(DispatchResolved.EVENT_TYPE, case.case_id, dispatch_id=old)], "accepted"),
        ([_status_event(ManualTriageRequired.EVENT_TYPE, case.case_id)], "manual_triage"),
    ]
    for batch, expected in batches:
        async with pool.acquire() as conn, conn.transaction():
            assert await handlers.project_status(conn, batch) == []
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT status, lead_dispatch_id FROM cases WHERE case_id = $1", case.case_id)
        assert row["status"] == expected
    assert row["lead_dispatch_id"] is None  # the manual queue holds it now
