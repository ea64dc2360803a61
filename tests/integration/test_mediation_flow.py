"""Mediation's handlers on a real PostgreSQL: capacity limits return the case to the router with a
reason; refused transitions change nothing; the time limit expires a mediation once."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from services.mediation import domain, handlers, storage
from services.mediation.entry import MIGRATIONS
from shared.cloudevents import CloudEvent, utcnow
from shared.contracts import CaseDispatched, Location
from shared.db import create_pool, migrate
from shared.messaging.consumer import Inbound
from shared.refusals import ActionRefused

COMMITTEE = "mediation-339901001001"
ONE_SEAT = domain.Directory(
    version="test",
    committee=(domain.Committee(id=COMMITTEE, name="柳岸社区人民调解委员会", level="village",
                                serves=("339901001001",)),),
    mediator=(domain.Mediator(id="m-only", name="王建国", committee=COMMITTEE, capacity=1),),
)


@pytest.fixture
async def pool(database_url: str):
    schema = f"mtest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    p = await create_pool(database_url, schema)
    yield p
    await p.close()


def _dispatch() -> Inbound:
    now = utcnow()
    d = CaseDispatched(case_id=uuid.uuid4(), case_number="339901-20261123-00001", dispatch_id=uuid.uuid4(),
                       unit_kind="mediation", unit_id=COMMITTEE, unit_name="柳岸社区人民调解委员会", level="village",
                       category="dispute.neighbourhood", title="漏水", description="楼上漏水",
                       location=Location(division_code="339901001001"), acknowledge_by=now, resolve_by=now)
    ev = CloudEvent.of(d, source="/onewindow/router", event_id=str(d.dispatch_id))
    return Inbound(SimpleNamespace(topic="dispatch.mediation", partition=0, offset=0), ev, d, None)


async def _feed(pool, mediation, item) -> list[CloudEvent]:
    async with pool.acquire() as conn, conn.transaction():
        out = await handlers.handle_batch_with(mediation)(conn, [item])
    return [o.event for o in out]


async def test_no_mediator_with_capacity_returns_the_case_with_a_reason(pool):
    mediation = handlers.Mediation(ONE_SEAT)
    first = await _feed(pool, mediation, _dispatch())
    assert [e.type for e in first] == ["org.onewindow.dispatch.accepted.v1", "org.onewindow.mediation.transitioned.v1"]
    second = await _feed(pool, mediation, _dispatch())
    assert [e.type for e in second] == ["org.onewindow.dispatch.returned.v1"]
    assert "spare capacity" in second[0].data["reason"]
    async with pool.acquire() as conn:
        assert await storage.open_loads(conn) == {"m-only": 1}


async def test_refused_transition_changes_nothing_and_expiry_fires_once(pool):
    mediation = handlers.Mediation(ONE_SEAT)
    item = _dispatch()
    await _feed(pool, mediation, item)
    mid = str(item.model.dispatch_id)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ActionRefused) as refused:
            await handlers.act(conn, mid, "m-only", "agree", utcnow(), agreement={"text": "x"})
        assert refused.value.status == 409
        with pytest.raises(ActionRefused):
            await handlers.act(conn, mid, "someone-else", "schedule", utcnow())
    async with pool.acquire() as conn:
        found = await storage.load(conn, mid)
    assert found[0].status is domain.Status.ASSIGNED and len(found[0].history) == 1
    later = utcnow() + timedelta(days=31)
    assert await handlers.expire_overdue(pool, later) == 1
    assert await handlers.expire_overdue(pool, later) == 0
    async with pool.acquire() as conn:
        m, _ = await storage.load(conn, mid)
        types = [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox ORDER BY seq")]
    assert m.status is domain.Status.EXPIRED
    assert types[-2:] == ["mediation.events", "feedback.mediation"]  # the router hears: returned, expired
