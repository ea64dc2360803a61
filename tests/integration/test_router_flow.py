"""The router's handlers on a real PostgreSQL, fed events directly (no broker needed to decide):
joint dispatch, return and re-route, transfer, refused feedback, callback and rework, manual
dispatch, and the supervision clocks driven by an injected time — with a restart in the middle."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.router import domain, handlers, triage
from services.router.workflow import RoutingDesk
from services.router.entry import MIGRATIONS
from shared.cloudevents import Actor, CloudEvent, utcnow
from shared.contracts import (
    CaseReceived,
    DispatchAccepted,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    Location,
)
from shared.contracts.events import CallbackOutcome
from shared.db import create_pool, migrate
from shared.divisions import load_divisions
from shared.messaging.consumer import Inbound, Reject
from shared.refusals import ActionRefused

HOTLINE = Actor("hotline-7", "hotline")
OPERATOR = Actor("op-7", "operator")
ROUTER = RoutingDesk(domain.load_catalogue(), domain.load_units(), load_divisions(), triage.load_active())
FIGHT, LEAK, TRAFFIC = ("public_security.violence.fight", "dispute.neighbourhood.water_leak",
                        "dispute.traffic.compensation")


@pytest.fixture
async def pool(database_url: str):  # a router schema of its own per test
    schema = f"rtest_{secrets.token_hex(3)}"
    await migrate(database_url, schema, MIGRATIONS)
    p = await create_pool(database_url, schema)
    yield p
    await p.close()


def _inbound(data, topic: str, source: str = "/test") -> Inbound:
    ev = CloudEvent.of(data, source=source, event_id=str(uuid.uuid4()))
    return Inbound(SimpleNamespace(topic=topic, partition=0, offset=0), ev, data,
                   "00-" + secrets.token_hex(16) + "-" + secrets.token_hex(8) + "-01")


async def _feed(pool, *items: Inbound) -> list[CloudEvent]:
    async with pool.acquire() as conn, conn.transaction():
        out = await handlers.build_batch_handler(ROUTER)(conn, list(items))
        from shared.messaging.outbox import add_to_outbox

        await add_to_outbox(conn, out)
    return [o.event for o in out]


async def _state(pool, case_id) -> domain.RoutingState:
    from services.router import storage

    async with pool.acquire() as conn, conn.transaction():
        return (await storage.load_states(conn, [str(case_id)]))[str(case_id)]


async def _outbox_headers(pool) -> list[dict[str, str]]:
    import base64

    rows = await pool.fetch("SELECT headers FROM outbox ORDER BY seq")
    return [{k: base64.b64decode(v).decode() for k, v in json.loads(r["headers"])} for r in rows]


async def _outbox_types(pool) -> list[str]:
    return [h["ce_type"] for h in await _outbox_headers(pool)]


def _case(text: str, division: str = "339901001001", flags=(), category=None) -> CaseReceived:
    return CaseReceived(case_id=uuid.uuid4(), case_number="339901-20261123-00001", channel="hotline",
                        title=text[:10], description=text, category=category,
                        location=Location(division_code=division), received_at=utcnow(), risk_flags=list(flags))


def _feedback(model_cls, state_dispatch, case_id, **extra):
    return _inbound(model_cls(case_id=case_id, dispatch_id=uuid.UUID(state_dispatch.dispatch_id),
                              unit_id=state_dispatch.unit_id, **extra),
                    f"feedback.{state_dispatch.unit_kind}", f"/departments/{state_dispatch.unit_kind}")


def test_the_handler_map_takes_exactly_what_the_router_consumes():
    from shared import topics

    consumed = {t for topic in topics.SERVICES["router"].consumes for t in topics.PUBLISHERS[topic].types}
    assert set(handlers.EVENT_HANDLERS) == consumed


async def test_joint_dispatch_sends_each_unit_its_own_dispatch(pool):
    case = _case("两车追尾发生交通事故，对赔偿有争议", category=TRAFFIC)
    out = await _feed(pool, _inbound(case, "intake.cases"))
    dispatched = [e for e in out if e.type.endswith("case.dispatched.v1")]
    assert [(e.data["unit_kind"], e.data["role"]) for e in dispatched] == [("mediation", "lead"), ("police", "assist")]
    routed = next(e for e in out if e.type.endswith("case.routed.v1"))
    assert len(routed.data["assignments"]) == 2 and routed.data["catalogue_version"] == ROUTER.catalogue.version
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM clocks WHERE case_id = $1", case.case_id) == 4


async def test_return_reroutes_without_the_unit_then_goes_to_the_manual_queue(pool):
    case = _case("小区门口有人打架", category=FIGHT)
    await _feed(pool, _inbound(case, "intake.cases"))
    seen = []
    for expected in ("police-339901", "police-339900", None):
        lead = (await _state(pool, case.case_id)).lead
        seen.append(lead.unit_id)
        out = await _feed(pool, _feedback(DispatchReturned, lead, case.case_id, reason="不属于本单位管辖"))
        if expected:
            routed = next(e for e in out if e.type.endswith("case.routed.v1"))
            assert routed.data["reason"] == "return" and routed.data["unit_id"] == expected
    assert seen == ["police-339901001", "police-339901", "police-339900"]
    assert [e.type for e in out] == ["org.onewindow.case.triage_corrected.v1",
                                     "org.onewindow.case.manual_triage_required.v1"]
    corrected = out[0].data
    assert (corrected["correction"], corrected["by"], corrected["predicted_category"], corrected["reason"]) == (
        "return", "police-339900", FIGHT, "不属于本单位管辖")
    state = await _state(pool, case.case_id)
    assert state.status is domain.CaseStatus.MANUAL and state.returns == 3


async def test_transfer_to_a_named_unit_and_refused_transfers(pool):
    case = _case("邻居家漏水，邻里纠纷", category=LEAK)
    await _feed(pool, _inbound(case, "intake.cases"))
    lead = (await _state(pool, case.case_id)).lead
    with pytest.raises(Reject, match="does not serve"):
        await _feed(pool, _feedback(DispatchTransferred, lead, case.case_id, reason="转办",
                                    target_unit_id="mediation-339902"))
    assert (await _state(pool, case.case_id)).lead.dispatch_id == lead.dispatch_id, "refused: state unchanged"
    out = await _feed(pool, _feedback(DispatchTransferred, lead, case.case_id, reason="涉及物业",
                                      target_unit_id="mediation-339901-property"))
    routed = next(e for e in out if e.type.endswith("case.routed.v1"))
    assert routed.data["reason"] == "transfer" and routed.data["unit_id"] == "mediation-339901-property"


async def test_feedback_that_does_not_fit_is_refused_and_changes_nothing(pool):
    case = _case("有人打架", category=FIGHT)
    await _feed(pool, _inbound(case, "intake.cases"))
    before = await _state(pool, case.case_id)
    lead = before.lead
    wrong_unit = SimpleNamespace(dispatch_id=lead.dispatch_id, unit_id="police-339902", unit_kind="police")
    other_topic = SimpleNamespace(dispatch_id=lead.dispatch_id, unit_id=lead.unit_id, unit_kind="court")
    unknown_case = _inbound(DispatchAccepted(case_id=uuid.uuid4(), dispatch_id=uuid.uuid4(), unit_id="x"),
                            "feedback.police")
    for bad in (_feedback(DispatchAccepted, wrong_unit, case.case_id),
                _feedback(DispatchAccepted, other_topic, case.case_id), unknown_case):
        with pytest.raises(Reject):
            await _feed(pool, bad)
    assert await _state(pool, case.case_id) == before


async def test_unknown_category_and_division_are_refused(pool):
    with pytest.raises(Reject, match="not in catalogue"):
        await _feed(pool, _inbound(_case("有人打架", category="no.such"), "intake.cases"))
    with pytest.raises(Reject, match="unknown division"):
        await _feed(pool, _inbound(_case("有人打架", division="339909001001"), "intake.cases"))


async def test_callback_closes_or_reopens_for_rework_then_escalates(pool):
    case = _case("有人打架", category=FIGHT)
    await _feed(pool, _inbound(case, "intake.cases"))

    async def resolve_lead():
        lead = (await _state(pool, case.case_id)).lead
        await _feed(pool, _feedback(DispatchAccepted, lead, case.case_id),
                    _feedback(DispatchResolved, lead, case.case_id, summary="已处置"))
        return lead

    first = await resolve_lead()
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ActionRefused):  # no callback before the resolution...
            await handlers.record_callback(conn, ROUTER, uuid.uuid4(), CallbackOutcome.SATISFIED, None, None, HOTLINE)
        state = await handlers.record_callback(conn, ROUTER, case.case_id, CallbackOutcome.UNSATISFIED, "还是很吵", None, HOTLINE)
    assert state.status is domain.CaseStatus.DISPATCHED and state.lead.unit_id == first.unit_id  # 重办
    await resolve_lead()
    async with pool.acquire() as conn, conn.transaction():
        state = await handlers.record_callback(conn, ROUTER, case.case_id, CallbackOutcome.UNSATISFIED, "仍未解决", None, HOTLINE)
    assert state.lead.unit_id == "police-339901" and state.reopened == 2  # escalated a level up
    await resolve_lead()
    async with pool.acquire() as conn, conn.transaction():
        state = await handlers.record_callback(conn, ROUTER, case.case_id, CallbackOutcome.SATISFIED, None, None, HOTLINE)
    assert state.status is domain.CaseStatus.CLOSED
    types = [t for t in await _outbox_types(pool) if "callback" in t or "reopened" in t or "escalated" in t
             or "closed" in t]
    assert types == ["org.onewindow.case.callback_recorded.v1", "org.onewindow.case.reopened.v1",
                     "org.onewindow.case.callback_recorded.v1", "org.onewindow.case.reopened.v1",
                     "org.onewindow.case.escalated.v1", "org.onewindow.case.callback_recorded.v1",
                     "org.onewindow.case.closed.v1"]
    # every event of the act names who did it; what the router did on its own names the router
    by_type = [(h["ce_type"], h.get("ce_actor"), h.get("ce_actorrole")) for h in await _outbox_headers(pool)]
    assert {(a, r) for t, a, r in by_type if "callback" in t or "closed" in t or "escalated" in t} == {
        ("hotline-7", "hotline")}
    first_routing = next((a, r) for t, a, r in by_type if t.endswith("case.routed.v1"))
    assert first_routing == ("/onewindow/router", "service")


async def test_free_text_is_routed_by_the_model_and_explained(pool):
    case = _case("小区门口两伙人打起来了，有人头上流血")
    out = await _feed(pool, _inbound(case, "intake.cases"))
    routed = next(e for e in out if e.type.endswith("case.routed.v1"))
    assert routed.data["unit_kind"] == "police"
    t = routed.data["triage"]
    assert t["model_version"] == ROUTER.model.version and t["features"] and len(t["candidates"]) == 3
    assert t["kind_probability"] >= t["threshold"] == ROUTER.model.threshold


async def test_manual_dispatch_from_the_queue_is_a_labelled_example(pool):
    unsure = ROUTER.model.with_threshold(1.01)
    router = RoutingDesk(ROUTER.catalogue, ROUTER.units, ROUTER.divisions, unsure)
    case = _case("路灯坏了好几天，晚上黑漆漆的")
    async with pool.acquire() as conn, conn.transaction():
        out = await handlers.build_batch_handler(router)(conn, [_inbound(case, "intake.cases")])
        from shared.messaging.outbox import add_to_outbox

        await add_to_outbox(conn, out)
    manual = next(o.event for o in out if o.event.type.endswith("manual_triage_required.v1"))
    proposed = triage.OUT_OF_SCOPE  # the model's own reading of a street lamp
    assert len(manual.data["candidates"]) == 3 and manual.data["model_version"] == ROUTER.model.version
    assert (await _state(pool, case.case_id)).status is domain.CaseStatus.MANUAL
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ActionRefused, match="not in catalogue"):
            await handlers.manual_dispatch(conn, router, case.case_id, "no.such", None, None, Actor("op", "operator"))
        state = await handlers.manual_dispatch(conn, router, case.case_id, "petition.officials.inaction", None,
                                               None, Actor("op-7", "operator"))
    assert state.status is domain.CaseStatus.DISPATCHED and state.lead.unit_id == "petition-339901"
    rows = await pool.fetch("SELECT value FROM outbox ORDER BY seq")
    corrections = [json.loads(r["value"]) for r in rows if b'"correction"' in r["value"]]
    assert [(c["correction"], c["by"], c["predicted_category"], c["corrected_category"], c["corrected_kind"])
            for c in corrections] == [("manual_dispatch", "op-7", proposed, "petition.officials.inaction",
                                       "petition")]
    assert corrections[0]["model_reading"] == proposed and corrections[0]["model_version"] == ROUTER.model.version
    # a reassignment to another matter is a correction too; to the same matter (another unit) it is not
    async with pool.acquire() as conn, conn.transaction():
        await handlers.manual_dispatch(conn, router, case.case_id, "petition.officials.inaction", None, None, Actor("op-7", "operator"))
        await handlers.manual_dispatch(conn, router, case.case_id, "petition.welfare.subsistence", None, None, Actor("op-8", "operator"))
    rows = await pool.fetch("SELECT value FROM outbox ORDER BY seq")
    corrections = [json.loads(r["value"]) for r in rows if b'"correction"' in r["value"]]
    assert [(c["correction"], c["predicted_category"], c["predicted_by"], c["corrected_category"])
            for c in corrections[1:]] == [
        ("reassignment", "petition.officials.inaction", "operator", "petition.welfare.subsistence")]


async def test_a_transfer_to_another_kind_is_a_correction(pool):
    case = _case("邻居家漏水，邻里纠纷", category=LEAK)
    await _feed(pool, _inbound(case, "intake.cases"))
    lead = (await _state(pool, case.case_id)).lead
    out = await _feed(pool, _feedback(DispatchTransferred, lead, case.case_id, reason="对方持刀威胁，属公安",
                                      target_kind="police"))
    corrected = next(e for e in out if e.type.endswith("triage_corrected.v1")).data
    assert (corrected["correction"], corrected["corrected_kind"], corrected["predicted_category"]) == (
        "transfer", "police", LEAK)


async def test_clocks_turn_yellow_then_red_once_and_survive_a_restart(pool, database_url):
    case = _case("小区门口有人打架", category=FIGHT)  # acknowledge in 30 min, resolve in 24 h
    await _feed(pool, _inbound(case, "intake.cases"))
    t0 = case.received_at
    assert await handlers.supervise_once(pool, ROUTER, t0 + timedelta(minutes=15)) == 0
    assert await handlers.supervise_once(pool, ROUTER, t0 + timedelta(minutes=23)) == 1  # acknowledge: yellow
    assert await handlers.supervise_once(pool, ROUTER, t0 + timedelta(minutes=25)) == 0  # fires once

    # "restart": a new pool and a new router object; the clocks live in PostgreSQL only
    schema = await pool.fetchval("SELECT current_schema()")
    before = await pool.fetchval("SELECT max(seq) FROM outbox")
    await pool.close()
    restarted = RoutingDesk(domain.load_catalogue(), domain.load_units(), load_divisions(), triage.load_active())
    pool2 = await create_pool(database_url, schema)
    try:
        assert await handlers.supervise_once(pool2, restarted, t0 + timedelta(minutes=31)) == 1  # red
        async with pool2.acquire() as conn:
            rows = await conn.fetch("SELECT topic, value FROM outbox WHERE seq > $1 ORDER BY seq", before)
        topics_ = [r["topic"] for r in rows]
        assert topics_.count("router.decisions") == 2  # the red notice and the escalation
        assert topics_.count("dispatch.police") == 2  # to the unit and to its superior
        escalation = next(json.loads(r["value"]) for r in rows if b"to_unit_id" in r["value"])
        assert escalation["to_unit_id"] == "police-339901"

        # accepting stops the acknowledge clock; pausing the resolve clock holds it
        lead = (await _state(pool2, case.case_id)).lead
        async with pool2.acquire() as conn, conn.transaction():
            out = await handlers.build_batch_handler(restarted)(conn, [_feedback(DispatchAccepted, lead, case.case_id)])
            from services.router import storage

            await storage.stop_clocks(conn, [])
            clocks = await handlers.pause_or_resume(conn, restarted, case.case_id, uuid.UUID(lead.dispatch_id), True,
                                                    "当事人住院", t0 + timedelta(hours=2), None, OPERATOR)
        assert out == [] and [c.kind for c in clocks] == ["resolve"]
        assert await handlers.supervise_once(pool2, restarted, t0 + timedelta(hours=30)) == 0  # paused
        async with pool2.acquire() as conn, conn.transaction():
            clocks = await handlers.pause_or_resume(conn, restarted, case.case_id, uuid.UUID(lead.dispatch_id), False,
                                                    "出院", t0 + timedelta(hours=12), None, OPERATOR)
        assert clocks[0].due_at == t0 + timedelta(hours=34)  # moved by the 10 h paused
        paused_and_resumed = [h for h in await _outbox_headers(pool2) if "clock_" in h["ce_type"]]
        assert [(h["ce_type"].split(".")[-2], h["ce_actor"]) for h in paused_and_resumed] == [
            ("clock_paused", "op-7"), ("clock_resumed", "op-7")]
        assert await handlers.supervise_once(pool2, restarted, t0 + timedelta(hours=30)) == 1  # yellow at 75 %
    finally:
        await pool2.close()


async def test_working_day_clocks_keep_their_unit_in_postgresql_across_a_weekend_pause(pool):
    """A neighbour dispute counts working days (stored with each clock): its yellow check and due times
    skip the weekend, and a pause over the weekend, read back from the table, moves nothing."""
    friday = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # Friday 10:00 Beijing time
    case = _case("邻居家漏水，邻里纠纷", category=LEAK).model_copy(update={"received_at": friday})
    await _feed(pool, _inbound(case, "intake.cases"))
    lead = (await _state(pool, case.case_id)).lead
    rows = await pool.fetch("SELECT kind, limit_unit, due_at, next_check FROM clocks WHERE dispatch_id = $1"
                            " ORDER BY kind", uuid.UUID(lead.dispatch_id))
    assert [(r["kind"], r["limit_unit"]) for r in rows] == [("acknowledge", "working_days"),
                                                            ("resolve", "working_days")]
    # 1 working day: to the end of Monday 30 November (Beijing); 75 % of its 38 working hours is
    # reached on Monday at 14:30, not over the weekend
    assert rows[0]["due_at"] == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert rows[0]["next_check"] == datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    # 7 working days: 30 November – 4 December, 7 and 8 December
    assert rows[1]["due_at"] == datetime(2026, 12, 8, 16, 0, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        await handlers.pause_or_resume(conn, ROUTER, case.case_id, uuid.UUID(lead.dispatch_id), True, "当事人外出",
                                       datetime(2026, 11, 28, 2, 0, tzinfo=UTC), None, OPERATOR)  # Saturday
    async with pool.acquire() as conn, conn.transaction():
        clocks = await handlers.pause_or_resume(conn, ROUTER, case.case_id, uuid.UUID(lead.dispatch_id), False,
                                                "回来了", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), None,
                                                OPERATOR)  # Sunday
    assert [(c.due_at, c.limit_unit.value) for c in clocks] == [(r["due_at"], "working_days") for r in rows]
    assert await handlers.supervise_once(pool, ROUTER, datetime(2026, 11, 30, 6, 29, tzinfo=UTC)) == 0
    assert await handlers.supervise_once(pool, ROUTER, datetime(2026, 11, 30, 6, 30, tzinfo=UTC)) == 1  # yellow


async def test_the_queue_is_filtered_by_jurisdiction_in_the_query_before_the_limit(pool):
    from services.router import storage

    for _ in range(3):  # three cases of 东湖区 (339901) wait first …
        await _feed(pool, _inbound(_case("路灯坏了", division="339901001001", category=FIGHT), "intake.cases"))
        async with pool.acquire() as conn:
            await conn.execute("UPDATE cases SET status = 'manual_triage'")
    xishan = _case("路灯坏了", division="339902001001", category=FIGHT)  # … then one of 西山县 (339902)
    await _feed(pool, _inbound(xishan, "intake.cases"))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE cases SET status = 'manual_triage'")
    manual = "manual"
    assert [r["case_id"] for r in await storage.queue(pool, manual, ["339902"], limit=1)] == [xishan.case_id]
    assert len(await storage.queue(pool, manual, ["*"], limit=10)) == 4
    assert await storage.queue(pool, manual, [], limit=10) == []  # no divisions: nothing
    assert await storage.queue(pool, manual, ["3399%"], limit=10) == []  # not a code: no wildcard
