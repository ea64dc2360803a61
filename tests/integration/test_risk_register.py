"""The risk register's storage and clustering on a real PostgreSQL: received cases of one place and
matter, arriving in concurrent batches, open exactly one risk; repeat reports rescore it; cases of
another place or an old one never join."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.mediation import risks, storage
from services.mediation.entry import MIGRATIONS
from services.mediation.risk_handlers import Register
from shared.cloudevents import CloudEvent
from shared.contracts import CaseDuplicateReported, CaseReceived
from shared.db import create_pool, migrate
from shared.divisions import load_divisions
from shared.messaging.consumer import Inbound

REGISTER = Register(risks.load_weights(), load_divisions())
T0 = datetime(2026, 11, 20, 2, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str):
    schema = f"rr_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def _received(division: str = "339901001001", days: float = 0, **extra) -> Inbound:
    case_id = uuid.uuid4()
    model = CaseReceived(case_id=case_id, case_number="339901-20261120-00001", channel="window", title="t",
                         description="d", category="dispute.neighbourhood.noise",
                         location={"division_code": division}, received_at=T0 + timedelta(days=days), **extra)
    ev = CloudEvent.of(model, source="/onewindow/intake", event_id=str(uuid.uuid4()))
    return Inbound(SimpleNamespace(topic="intake.cases", partition=0, offset=0), ev, model)


def _repeat(case: Inbound) -> Inbound:
    model = CaseDuplicateReported(case_id=case.model.case_id, case_number="n", submission_id=uuid.uuid4(),
                                  channel="hotline", similarity=0.9, received_at=T0)
    ev = CloudEvent.of(model, source="/onewindow/intake", event_id=str(uuid.uuid4()))
    return Inbound(SimpleNamespace(topic="intake.cases", partition=0, offset=0), ev, model)


async def _batch(pool, items: list[Inbound]) -> list:
    async with pool.acquire() as conn, conn.transaction():
        return await REGISTER.on_cases(conn, items)


async def _risks(pool) -> list[risks.Risk]:
    return await storage.risk_listing(pool, None, None, None, 100)


async def test_concurrent_batches_of_related_cases_open_exactly_one_risk(pool):
    first, second = [_received(), _received(days=1)], [_received(days=2), _received(days=3)]
    outs = await asyncio.gather(_batch(pool, first), _batch(pool, second))
    [risk] = await _risks(pool)
    assert sorted(risk.case_ids) == sorted(str(i.model.case_id) for i in first + second)
    assert risk.score == risks.score_of(risks.factors_of([], REGISTER.weights) | {"cases": 4}, REGISTER.weights)
    types = [o.event.type for out in outs for o in out]
    assert types == ["org.onewindow.risk.identified.v1"]
    identified = next(o for out in outs for o in out).event
    assert identified.subject == risk.risk_id and identified.actor.role == "service"

    # a repeat report of one of its cases raises the score; a case elsewhere or long after does not join
    out = await _batch(pool, [_repeat(first[0]), _received(division="339901001002"), _received(days=40)])
    [risk_after] = await _risks(pool)
    assert risk_after.factors["repeat_reports"] == 1 and risk_after.score > risk.score
    assert len(risk_after.case_ids) == 4
    [changed] = [o.event for o in out]
    assert changed.type == "org.onewindow.risk.changed.v1"
    assert (changed.data["previous_score"], changed.data["score"]) == (risk.score, risk_after.score)
    assert (changed.data["status"], changed.data["previous_status"]) == ("identified", "identified")


async def test_a_replayed_batch_changes_nothing(pool):
    cases = [_received(), _received(days=1), _received(days=2)]
    await _batch(pool, cases)
    [risk] = await _risks(pool)
    assert await _batch(pool, cases) == []
    assert [(r.risk_id, r.case_ids, r.score) for r in await _risks(pool)] == [(risk.risk_id, risk.case_ids, risk.score)]
