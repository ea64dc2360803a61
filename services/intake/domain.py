"""Intake's domain: what a submission is, how a case number reads, what event it yields. Pure."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts import CaseReceived, Channel, Location

SOURCE = "/onewindow/intake"
CHINA_TZ = timezone(timedelta(hours=8))  # case numbers carry the local (Beijing) date


class Reporter(BaseModel):
    """Who reported the matter. Kept in intake's store only."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    # mainland mobile (11 digits starting 1) or a landline with area code
    phone: Annotated[str, Field(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")] | None = None


class CaseSubmission(BaseModel):
    """A request as submitted at the window (HTTP body)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(min_length=1, max_length=5000)]
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")] | None = None
    location: Location
    reporter: Reporter | None = None

    @model_validator(mode="after")
    def _title_from_description(self) -> "CaseSubmission":
        if not self.title:
            self.title = self.description[:30]
        return self

    def fingerprint(self) -> str:
        """A hash of the submission, to tell a retry (same body) from a reused idempotency key."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def case_number_prefix(division_code: str, received_at: datetime) -> str:
    """County code + local date: '339901-20261123'."""
    return f"{division_code[:6]}-{received_at.astimezone(CHINA_TZ):%Y%m%d}"


def format_case_number(prefix: str, sequence: int) -> str:
    """A case number people can read and say on the phone: '339901-20261123-00042'."""
    return f"{prefix}-{sequence:05d}"


def received_event(case_id: UUID, case_number: str, sub: CaseSubmission, received_at: datetime) -> CaseReceived:
    """The case.received fact: no personal data, only whether contact details exist."""
    return CaseReceived(
        case_id=case_id,
        case_number=case_number,
        channel=sub.channel,
        title=sub.title or sub.description[:30],
        description=sub.description,
        category=sub.category,
        location=sub.location,
        received_at=received_at,
        has_reporter_contact=bool(sub.reporter and sub.reporter.phone),
    )
