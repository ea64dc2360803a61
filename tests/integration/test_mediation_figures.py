"""The command centre's mediation figures respect the token's jurisdiction, filtered in SQL on the
dispute's division: a county operator sees nothing of another county's mediations, a city-wide one
sees all, a grant without divisions sees nothing (fail closed)."""

from __future__ import annotations

import secrets
import uuid
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from services.mediation import domain, handlers, storage
from services.mediation.api import build_api
from services.mediation.entry import MIGRATIONS
from shared.cloudevents import CloudEvent, utcnow
from shared.contracts import CaseDispatched, Location
from shared.db import create_pool, migrate
from shared.http import install_problem_handlers
from shared.messaging.consumer import Inbound
from shared.settings import Settings
from tests.conftest import ISSUER, TOKENS

DONGHU, XISHAN = "339901", "339902"  # two counties of the sample city
COMMITTEES = {DONGHU: "mediation-339901001001", XISHAN: "mediation-339902001001"}
NOWHERE = {"operator-token-nowhere": ISSUER.mint("operator-3", "operator", [])}


@pytest.fixture
async def pool(database_url: str):
    schema = f"mfig_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    p = await create_pool(database_url, schema)
    yield p
    await p.close()


def _dispatch(county: str) -> Inbound:
    now, committee = utcnow(), COMMITTEES[county]
    d = CaseDispatched(case_id=uuid.uuid4(), case_number=f"{county}-20261123-00001", dispatch_id=uuid.uuid4(),
                       unit_kind="mediation", unit_id=committee, unit_name="社区人民调解委员会", level="village",
                       category="dispute.neighbourhood", title="漏水", description="楼上漏水",
                       location=Location(division_code=f"{county}001001"), acknowledge_by=now, resolve_by=now)
    ev = CloudEvent.of(d, source="/onewindow/router", event_id=str(d.dispatch_id))
    return Inbound(SimpleNamespace(topic="dispatch.mediation", partition=0, offset=0), ev, d, None)


async def _figures(pool, token: str) -> dict:
    app = FastAPI()
    install_problem_handlers(app)
    directory = domain.load_directory()
    app.include_router(build_api(Settings(_env_file=None, auth_issuer=ISSUER.issuer, auth_jwks_file=ISSUER.jwks_file), directory))
    app.state.runtime = SimpleNamespace(pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mediation") as client:
        r = await client.get("/v1/figures", headers={"Authorization": f"Bearer {({**TOKENS, **NOWHERE})[token]}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_county_operator_sees_nothing_of_another_countys_mediation_figures(pool):
    mediation = handlers.Mediation(domain.load_directory())
    async with pool.acquire() as conn, conn.transaction():
        await handlers.handle_batch_with(mediation)(conn, [_dispatch(DONGHU), _dispatch(DONGHU), _dispatch(XISHAN)])
        # a mediation recorded before divisions were: only city-wide grants count it
        legacy = domain.start("legacy-1", str(uuid.uuid4()), "dispatch", domain.place_dispatch(
            mediation.directory, COMMITTEES[DONGHU], {}), utcnow())
        await storage.insert(conn, legacy)
    mediators = {c: {m.id for m in mediation.directory.mediators_of(COMMITTEES[c])} for c in COMMITTEES}

    city = await _figures(pool, "operator-token-0001")
    assert {c["committee_id"]: c["open"] for c in city["by_committee"]} == {COMMITTEES[DONGHU]: 3,
                                                                            COMMITTEES[XISHAN]: 1}
    assert sum(city["open_by_mediator"].values()) == 4

    xishan = await _figures(pool, "operator-token-xishan")
    assert {c["committee_id"]: c["open"] for c in xishan["by_committee"]} == {COMMITTEES[XISHAN]: 1}
    assert set(xishan["open_by_mediator"]) <= mediators[XISHAN] and sum(xishan["open_by_mediator"].values()) == 1
    assert DONGHU not in str(xishan)  # nothing of 东湖区: no committee, no mediator, no count

    nowhere = await _figures(pool, "operator-token-nowhere")
    assert nowhere == {"by_committee": [], "by_level": {}, "by_specialty": {}, "open_by_mediator": {}}
