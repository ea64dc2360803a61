"""Intake's domain, as plain Python: who may submit what, case numbers, duplicate reports (重复件),
the case.received fact, and the status a submitter sees."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from uuid import UUID

from shared.contracts import AttachmentRef, CaseReceived, Channel, Location
from shared.contracts.submissions import CaseSubmission

SOURCE = "/onewindow/intake"
CHINA_TZ = timezone(timedelta(hours=8))  # case numbers carry the local (Beijing) date

# Which channels each role may submit through (the operator may enter any).
ROLE_CHANNELS: dict[str, frozenset[Channel]] = {
    "clerk": frozenset({Channel.WINDOW, Channel.HOTLINE, Channel.GRID, Channel.CITIZEN_APP, Channel.ONLINE_PETITION}),
    "hotline": frozenset({Channel.HOTLINE}),
    "grid": frozenset({Channel.GRID}),
    "citizen": frozenset({Channel.CITIZEN_APP, Channel.ONLINE_PETITION}),
    "department": frozenset({Channel.POLICE_REFERRAL, Channel.COURT_REFERRAL}),
    "operator": frozenset(Channel),
}
SUBMITTER_ROLES = tuple(ROLE_CHANNELS)
# Roles that see every case in their jurisdiction; the others see only what they submitted.
STAFF_ROLES = ("clerk", "hotline", "grid", "department", "operator", "auditor")


def may_submit(role: str, channel: Channel) -> bool:
    """Whether a role may submit through a channel."""
    return channel in ROLE_CHANNELS.get(role, frozenset())


def fingerprint(sub: CaseSubmission) -> str:
    """A hash of the submission, to tell a retry (same body) from a reused idempotency key."""
    return hashlib.sha256(json.dumps(sub.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def case_number_prefix(division_code: str, received_at: datetime) -> str:
    """County code + local date: '339901-20261123'."""
    return f"{division_code[:6]}-{received_at.astimezone(CHINA_TZ):%Y%m%d}"


def format_case_number(prefix: str, sequence: int) -> str:
    """A case number people can read and say on the phone: '339901-20261123-00042'."""
    return f"{prefix}-{sequence:05d}"


def _bigrams(text: str) -> set[str]:
    chars = [c for c in text if not c.isspace() and c not in "，。！？、,.!?;；:：()（）"]
    return {a + b for a, b in zip(chars, chars[1:])} or set(chars)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams: robust for Chinese text without segmentation."""
    return _jaccard(_bigrams(a), _bigrams(b))


@lru_cache(maxsize=50_000)
def _case_bigrams(case_id: UUID, text: str) -> frozenset[str]:
    return frozenset(_bigrams(text))


def _jaccard(x: set[str], y: set[str]) -> float:
    return len(x & y) / len(x | y) if x and y else 0.0


@dataclass(frozen=True)
class OpenCase:
    """A case that a new report may repeat."""

    case_id: UUID
    case_number: str
    division_code: str
    category: str | None
    text: str
    received_at: datetime
    bigrams: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.bigrams:  # computed once per case (cached across groups), not per comparison
            object.__setattr__(self, "bigrams", _case_bigrams(self.case_id, self.text))


@dataclass(frozen=True)
class DuplicatePolicy:
    """When a report counts as the same matter: same division and category, similar text, recent."""

    window: timedelta = timedelta(hours=72)
    threshold: float = 0.6
    candidates: int = 30  # most recent open cases per division compared with a new report


def find_duplicate(
    sub: CaseSubmission, received_at: datetime, open_cases: list[OpenCase], policy: DuplicatePolicy
) -> tuple[OpenCase, float] | None:
    """The most similar open case this submission repeats, with its similarity, or None."""
    text = _bigrams(f"{sub.title} {sub.description}")
    best: tuple[OpenCase, float] | None = None
    for case in open_cases:
        if case.division_code != sub.location.division_code or case.category != sub.category:
            continue
        if not (received_at - policy.window <= case.received_at <= received_at):
            continue
        score = round(_jaccard(text, case.bigrams), 3)
        if score >= policy.threshold and (best is None or score > best[1]):
            best = (case, score)
    return best


def received_event(
    case_id: UUID, case_number: str, sub: CaseSubmission, received_at: datetime, submission_ref: str | None = None
) -> CaseReceived:
    """The case.received fact: no personal data — only whether a contact exists and how many parties."""
    loc = sub.location
    return CaseReceived(
        case_id=case_id,
        case_number=case_number,
        channel=sub.channel,
        title=sub.title or sub.description[:30],
        description=sub.description,
        category=sub.category,
        location=Location(
            division_code=loc.division_code,
            grid_id=loc.grid_id,
            address=loc.address,
            lat=loc.coordinates.lat if loc.coordinates else None,
            lng=loc.coordinates.lng if loc.coordinates else None,
        ),
        received_at=received_at,
        has_reporter_contact=bool(sub.reporter and sub.reporter.phone),
        risk_flags=[f.value for f in sub.risk_flags],
        occurred_at=sub.occurred_at,
        people_involved=sub.people_involved,
        parties_count=len(sub.parties),
        attachments=[AttachmentRef(**a.model_dump()) for a in sub.attachments],
        submission_ref=submission_ref,
    )


class CaseStatus(StrEnum):
    """The status a submitter sees, in the order a case moves through it."""

    RECEIVED = "received"
    AWAITING_TRIAGE = "awaiting_manual_triage"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


STATUS_RANK = {s: i for i, s in enumerate(CaseStatus)}

# What each event the submitter should know of means for the status.
STATUS_OF_EVENT = {
    "org.onewindow.case.manual_triage_required.v1": CaseStatus.AWAITING_TRIAGE,
    "org.onewindow.case.routed.v1": CaseStatus.DISPATCHED,
    "org.onewindow.dispatch.accepted.v1": CaseStatus.IN_PROGRESS,
    "org.onewindow.dispatch.resolved.v1": CaseStatus.RESOLVED,
    "org.onewindow.case.closed.v1": CaseStatus.CLOSED,
}


def advance(current: CaseStatus, new: CaseStatus) -> CaseStatus:
    """Statuses only move forward: a late or redelivered event never moves a case back."""
    return new if STATUS_RANK[new] > STATUS_RANK[current] else current
