"""Intake's rules (pure): the submission contract, case numbers, repeat reports, statuses, roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake import domain
from shared.contracts import Channel
from shared.contracts.submissions import CaseSubmission, id_number_is_valid
from shared.divisions import load_divisions

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VALID_ID = "11010519491231002X"  # the standard's own example


def _sub(**over) -> CaseSubmission:
    body = {"channel": "hotline", "description": "邻居家每天深夜装修噪音扰民", "location": {"division_code": "339901001001"},
            "reporter": {"name": "张三", "phone": "13800138000"}}
    body.update(over)
    return CaseSubmission.model_validate(body, context={"divisions": load_divisions()})


def test_case_number_uses_county_and_beijing_date():
    late_evening_utc = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)  # already the 24th in Beijing
    prefix = domain.case_number_prefix("339901001001", late_evening_utc)
    assert prefix == "339901-20261124"
    assert domain.format_case_number(prefix, 42) == "339901-20261124-00042"


@pytest.mark.parametrize("phone", ["12345", "23800138000", "1380013800a"])
def test_bad_phone_numbers_are_refused(phone):
    with pytest.raises(ValidationError):
        _sub(reporter={"phone": phone})


def test_id_numbers_need_a_valid_check_digit():
    assert id_number_is_valid(VALID_ID)
    assert not id_number_is_valid("110105194912310021")
    assert _sub(parties=[{"id_number": VALID_ID.lower()}]).parties[0].id_number == VALID_ID
    with pytest.raises(ValidationError, match="check digit"):
        _sub(parties=[{"id_number": "110105194912310021"}])


def test_unknown_division_is_refused_with_the_directory():
    with pytest.raises(ValidationError, match="unknown administrative division"):
        _sub(location={"division_code": "110101001001"})


def test_every_invalid_field_is_reported_at_once():
    with pytest.raises(ValidationError) as exc:
        _sub(channel="fax", description="", occurred_at="2999-01-01T00:00:00+08:00",
             attachments=[{"name": "a.jpg", "media_type": "image/jpeg", "size": -1, "sha256": "xyz"}])
    fields = {".".join(map(str, e["loc"])) for e in exc.value.errors()}
    assert {"channel", "description", "occurred_at", "attachments.0.size", "attachments.0.sha256"} <= fields


def test_landline_is_accepted_and_title_defaults_to_the_description():
    s = _sub(reporter={"phone": "0571-87654321"})
    assert s.title == "邻居家每天深夜装修噪音扰民"


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs"):
        _sub(priority="high")


def test_received_event_carries_no_personal_data():
    s = _sub(parties=[{"name": "李四", "id_number": VALID_ID}], risk_flags=["minors", "violence", "minors"])
    ev = domain.received_event(uuid.uuid4(), "339901-20261123-00001", s, NOW)
    dumped = ev.model_dump_json()
    assert "张三" not in dumped and "13800138000" not in dumped and "李四" not in dumped and VALID_ID not in dumped
    assert ev.has_reporter_contact is True and ev.parties_count == 1
    assert ev.risk_flags == ["minors", "violence"]


def test_fingerprint_tells_retries_from_other_submissions():
    assert domain.fingerprint(_sub()) == domain.fingerprint(_sub())
    assert domain.fingerprint(_sub()) != domain.fingerprint(_sub(description="另一件事"))


def _open(text: str, *, division="339901001001", category=None, age=timedelta(hours=1)) -> domain.OpenCase:
    return domain.OpenCase(uuid.uuid4(), "339901-20261123-00001", division, category, text, NOW - age)


def test_repeat_report_is_found_by_place_category_text_and_time():
    policy = domain.DuplicatePolicy()
    same = _open("邻居家每天深夜装修噪音扰民 邻居家每天深夜装修噪音扰民")
    found = domain.find_duplicate(_sub(), NOW, [_open("路灯坏了"), same], policy)
    assert found is not None and found[0] is same and found[1] >= policy.threshold
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, division="339901001002")], policy) is None
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, category="civil.litigation")], policy) is None
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, age=timedelta(days=4))], policy) is None


def test_similarity_is_symmetric_and_bounded():
    a, b = "小区门口有人打架", "小区门口有人打架斗殴"
    assert domain.similarity(a, b) == domain.similarity(b, a)
    assert 0.5 < domain.similarity(a, b) < 1.0
    assert domain.similarity(a, a) == 1.0 and domain.similarity(a, "路灯") == 0.0


def test_status_only_moves_forward():
    s = domain.CaseStatus
    assert domain.advance(s.RECEIVED, s.DISPATCHED) is s.DISPATCHED
    assert domain.advance(s.CLOSED, s.IN_PROGRESS) is s.CLOSED


def test_roles_submit_through_their_channels_only():
    assert domain.may_submit("hotline", Channel.HOTLINE)
    assert not domain.may_submit("citizen", Channel.POLICE_REFERRAL)
    assert domain.may_submit("department", Channel.COURT_REFERRAL)
    assert not domain.may_submit("auditor", Channel.WINDOW)
