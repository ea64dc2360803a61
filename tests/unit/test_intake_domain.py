"""Intake's submission rules and case numbers (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.intake import domain


def _sub(**over) -> domain.CaseSubmission:
    body = {"channel": "hotline", "description": "邻居噪音扰民", "location": {"division_code": "339901001001"},
            "reporter": {"name": "张三", "phone": "13800138000"}}
    body.update(over)
    return domain.CaseSubmission.model_validate(body)


def test_case_number_uses_county_and_beijing_date():
    late_evening_utc = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)  # already the 24th in Beijing
    prefix = domain.case_number_prefix("339901001001", late_evening_utc)
    assert prefix == "339901-20261124"
    assert domain.format_case_number(prefix, 42) == "339901-20261124-00042"


@pytest.mark.parametrize("phone", ["12345", "23800138000", "1380013800a"])
def test_bad_phone_numbers_are_refused(phone):
    with pytest.raises(ValidationError):
        _sub(reporter={"phone": phone})


def test_landline_is_accepted_and_title_defaults_to_the_description():
    s = _sub(reporter={"phone": "0571-87654321"})
    assert s.title == "邻居噪音扰民"


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        _sub(priority="high")


def test_received_event_carries_no_personal_data():
    s = _sub()
    ev = domain.received_event(uuid.uuid4(), "339901-20261123-00001", s, datetime.now(UTC))
    dumped = ev.model_dump_json()
    assert "张三" not in dumped and "13800138000" not in dumped
    assert ev.has_reporter_contact is True


def test_fingerprint_tells_retries_from_other_submissions():
    assert _sub().fingerprint() == _sub().fingerprint()
    assert _sub().fingerprint() != _sub(description="另一件事").fingerprint()
