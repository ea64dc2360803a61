"""The audit's case summary (holder, status, supervision colour) and personal-data masking (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.audit.domain import CaseSummary, fold, mask_personal, mask_text

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
P = "org.onewindow."


def _play(*steps: tuple[str, dict]) -> CaseSummary:
    s = CaseSummary(case_id="c1")
    for i, (t, data) in enumerate(steps):
        fold(s, P + t + ".v1", data, T0 + timedelta(minutes=i))
    return s


RECEIVED = ("case.received", {"case_number": "339901-20261123-00001", "category": None,
                              "location": {"division_code": "339901001002"}})
ROUTED = ("case.routed", {"category": "public_security.violence", "risk_colour": "yellow"})
LEAD = ("case.dispatched", {"dispatch_id": "d1", "unit_id": "police-339901001", "role": "lead",
                            "category": "public_security.violence", "risk_colour": "yellow",
                            "location": {"division_code": "339901001002"}})
ASSIST = ("case.dispatched", {"dispatch_id": "d2", "unit_id": "petition-339901", "role": "assist"})


def test_holder_follows_the_lead_dispatch_not_the_assisting_one():
    s = _play(RECEIVED, ROUTED, LEAD, ASSIST, ("dispatch.accepted", {"dispatch_id": "d2"}))
    assert (s.holder_unit_id, s.status, s.holder_since) == ("police-339901001", "dispatched", T0 + timedelta(minutes=2))
    assert s.units == ["petition-339901", "police-339901001"]
    assert (s.division, s.category, s.risk_colour, s.case_number) == (
        "339901001002", "public_security.violence", "yellow", "339901-20261123-00001")
    s = fold(s, P + "dispatch.accepted.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=1))
    assert s.status == "accepted" and s.events == 6


def test_red_notice_makes_the_case_overdue_until_resolved_and_escalation_counts():
    s = _play(RECEIVED, LEAD, ("supervision.notice", {"dispatch_id": "d1", "colour": "yellow"}))
    assert (s.supervision, s.overdue) == ("yellow", False)
    fold(s, P + "supervision.notice.v1", {"dispatch_id": "d1", "colour": "red"}, T0 + timedelta(hours=2))
    fold(s, P + "supervision.notice.v1", {"dispatch_id": "d1", "colour": "yellow"}, T0 + timedelta(hours=3))
    fold(s, P + "case.escalated.v1", {"dispatch_id": "d1", "to_unit_id": "police-339901"}, T0 + timedelta(hours=3))
    assert (s.supervision, s.overdue, s.escalations) == ("red", True, 1)
    fold(s, P + "dispatch.resolved.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=4))
    assert (s.status, s.overdue, s.supervision) == ("resolved", False, "white")  # off the board; escalations stay
    fold(s, P + "case.closed.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=5))
    assert (s.status, s.holder_unit_id, s.supervision) == ("closed", None, "white")


def test_a_return_leaves_the_case_with_the_router_until_the_next_dispatch():
    s = _play(RECEIVED, LEAD, ("dispatch.returned", {"dispatch_id": "d1", "reason": "不属本单位"}))
    assert (s.status, s.holder_unit_id, s.returns) == ("returned", None, 1)
    fold(s, P + "supervision.notice.v1", {"dispatch_id": "d1", "colour": "red"}, T0 + timedelta(hours=1))
    assert not s.overdue, "a notice on a dispatch that no longer leads changes nothing"
    fold(s, P + "case.dispatched.v1", {"dispatch_id": "d3", "unit_id": "police-339901002", "role": "lead"},
         T0 + timedelta(hours=2))
    assert (s.status, s.holder_unit_id, s.lead_dispatch_id) == ("dispatched", "police-339901002", "d3")


def test_manual_queue_mediation_and_unknown_types():
    s = _play(RECEIVED, ("case.manual_triage_required", {"reason": "low confidence"}))
    assert (s.status, s.holder_unit_id) == ("manual_triage", None)
    fold(s, P + "mediation.transitioned.v1", {"to_status": "scheduled"}, T0 + timedelta(hours=1))
    fold(s, "com.example.future.v9", {"x": 1}, T0 + timedelta(hours=2))
    assert (s.mediation_status, s.status, s.events, s.last_type) == ("scheduled", "manual_triage", 4,
                                                                      "com.example.future.v9")


def test_free_text_numbers_masked_ids_and_codes_left_alone():
    assert mask_text("电话13812345678，身份证33010219900101123X，座机0571-87654321") == (
        "电话138****5678，身份证330102********123X，座机0571-****4321")
    data = {
        "case_number": "339901-20261123-00042", "dispatch_id": "0a7f6519-16cd-43dd-8448-013812345678",
        "description": "我叫张三，手机13900001111", "location": {"division_code": "339901001002",
                                                             "address": "西湖区文三路90号", "lat": 30.27415, "lng": 120.15515},
        "agreement": {"terms": "王五赔偿2000元，联系18800002222"}, "people_involved": 13812345678,
    }
    masked = mask_personal(data)
    assert masked["case_number"] == data["case_number"] and masked["dispatch_id"] == data["dispatch_id"]
    assert masked["description"] == "我叫张*，手机139****1111"
    assert masked["location"] == {"division_code": "339901001002", "address": "西湖…", "lat": 30.27, "lng": 120.16}
    assert masked["agreement"]["terms"] == "王五赔偿2000元，联系188****2222"
    assert masked["people_involved"] == 13812345678  # a number field is not free text
    assert data["description"] == "我叫张三，手机13900001111", "the input is not changed"


def test_events_recorded_out_of_order_across_topics_do_not_step_the_status_back():
    """router.decisions, dispatch.* and feedback.* are separate topics: audit may record a dispatch
    before the decision that made it, or a late feedback after the closure."""
    s = _play(RECEIVED, LEAD, ROUTED)
    assert (s.status, s.holder_unit_id, s.category) == ("dispatched", "police-339901001", "public_security.violence")
    fold(s, P + "dispatch.resolved.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=1))
    fold(s, P + "dispatch.accepted.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=1))  # recorded late
    assert s.status == "resolved"
    fold(s, P + "case.closed.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=2))
    fold(s, P + "dispatch.progress.v1", {"dispatch_id": "d1"}, T0 + timedelta(hours=2))
    assert s.status == "closed"


def test_operators_see_grid_ids_whole_and_addresses_stay_masked():
    data = {"location": {"division_code": "339901001001", "grid_id": "339901001001-01", "address": "柳岸路12号"}}
    assert mask_personal(data)["location"]["grid_id"] == "33…"
    kept = mask_personal(data, keep=frozenset({"grid_id"}))["location"]
    assert kept == {"division_code": "339901001001", "grid_id": "339901001001-01", "address": "柳岸…"}
