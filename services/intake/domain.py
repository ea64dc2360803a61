"""Intake's domain, as plain Python: who may submit and read what, case numbers, duplicate reports
(重复件), the plan for a group of submissions with the facts it announces, and the status a
submitter sees."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from typing import Callable, Iterable, Mapping, Sequence
from uuid import UUID

from shared import personal
from shared.cloudevents import Actor, derive_id
from shared.contracts import (
    AttachmentRef,
    CaseClosed,
    CaseDuplicateReported,
    CaseReceived,
    CaseRouted,
    Channel,
    DispatchAccepted,
    DispatchResolved,
    Location,
    ManualTriageRequired,
)
from shared.contracts.events import CaseClosedDirectly, CaseMerged, CaseRefused
from shared.contracts.submissions import CaseSubmission
from shared.divisions import DivisionDirectory
from shared.grids import GridDirectory, grid_of_report

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


def may_read(role: str, reader: str, submitted_by: str) -> bool:
    """Whether a reader (already within the case's jurisdiction) may see a submission: staff see every
    one, the others only their own."""
    return role in STAFF_ROLES or submitted_by == reader


def validate_submission(data: object, divisions: DivisionDirectory, grids: GridDirectory | None = None) -> CaseSubmission:
    """The submission contract, division codes checked against the directory (and grid ids against
    the grid directory when given)."""
    return CaseSubmission.model_validate(data, context={"divisions": divisions, "grids": grids})


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
        title=sub.title or personal.masked_cut(sub.description, 30),  # mask before cutting a number in two
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


# ---------------------------------------------------------------- a group of submissions, planned


@dataclass(frozen=True)
class Pending:
    """One submission waiting to be written, with how it came: the submitter's idempotency key, who
    submitted it, the trace it continues and (Kafka submissions) the submitting system's event id."""

    submission: CaseSubmission
    idempotency_key: str | None
    submitted_by: str
    traceparent: str | None
    submission_ref: str | None = None
    actor: Actor | None = None  # who submitted it, recorded on the events it causes


@dataclass(frozen=True)
class Outcome:
    """What the submitter is told."""

    case_id: UUID  # the case the submission created or repeats
    case_number: str
    submission_id: UUID
    duplicate: bool = False
    replayed: bool = False  # an earlier submission with the same idempotency key
    conflict: bool = False  # the idempotency key was used for a different submission


@dataclass(frozen=True)
class EarlierSubmission:
    """A submission written before under the idempotency key a new one carries."""

    submission_id: UUID
    case_id: UUID  # the case it created or repeats
    case_number: str
    duplicate: bool
    request_hash: str
    submitted_by: str


def answer_retry(earlier: EarlierSubmission, p: Pending) -> Outcome:
    """A retry (same body, same submitter) is told the earlier outcome; anything else reused the key."""
    same = earlier.request_hash == fingerprint(p.submission) and earlier.submitted_by == p.submitted_by
    return Outcome(earlier.case_id, earlier.case_number, earlier.submission_id, earlier.duplicate,
                   replayed=same, conflict=not same)


@dataclass(frozen=True)
class NewCase:
    """A submission that opens a case, with the case's number."""

    case_id: UUID  # also the submission's id
    case_number: str
    pending: Pending


@dataclass(frozen=True)
class RepeatReport:
    """A submission that repeats an open case (重复件): a row of its own, linked to the case."""

    submission_id: UUID
    case_id: UUID
    case_number: str
    similarity: float
    pending: Pending


@dataclass(frozen=True)
class Announcement:
    """An event the plan decided on: the fact, its id (derived from what caused it, so a replay yields
    the same id) and the trace of the submission it continues."""

    fact: CaseReceived | CaseDuplicateReported
    event_id: str
    traceparent: str | None
    actor: Actor | None = None


@dataclass(frozen=True)
class GroupPlan:
    """What a group of submissions comes to, in the order it is written: new cases before the repeat
    reports that may point at them, and their announcements in the same order."""

    received_at: datetime
    new_cases: list[NewCase]
    repeats: list[RepeatReport]
    last_numbers: dict[str, int]  # per prefix this group numbered in: the last number it used
    announcements: list[Announcement]
    outcomes: list[Outcome]  # one per submission, in the group's order


def duplicate_event(report: RepeatReport, received_at: datetime) -> CaseDuplicateReported:
    """The case.duplicate_reported fact: which case was reported again, through which channel."""
    return CaseDuplicateReported(case_id=report.case_id, case_number=report.case_number,
                                 submission_id=report.submission_id, channel=report.pending.submission.channel,
                                 similarity=report.similarity, received_at=received_at)


def numbering_prefixes(group: Sequence[Pending], earlier: Mapping[str, EarlierSubmission],
                       received_at: datetime) -> list[str]:
    """The case-number prefixes a group may number in: those of every submission that is not a retry
    of an earlier one. Sorted, so that replicas lock their counters in the same order."""
    return sorted({case_number_prefix(p.submission.location.division_code, received_at)
                   for p in group if p.idempotency_key not in earlier})


def plan_group(
    group: Sequence[Pending],
    earlier: Mapping[str, EarlierSubmission],
    open_cases: Sequence[OpenCase],
    last_numbers: Mapping[str, int],
    received_at: datetime,
    policy: DuplicatePolicy,
    new_id: Callable[[], UUID] = uuid.uuid4,
) -> GroupPlan:
    """Decide a group of submissions received together.

    `earlier` holds the submissions written before under the group's idempotency keys, `open_cases`
    the recent open cases of the group's divisions, `last_numbers` the last case number used under
    each of `numbering_prefixes(group, ...)`. A retry is told the first outcome (an earlier
    submission's, or that of the first in the group with its key); a report that repeats an open
    case — read, or opened earlier in this group — is linked to it; every other submission opens a
    case, numbered on from `last_numbers` in the group's order.
    """
    candidates: dict[str, list[OpenCase]] = {}
    for case in open_cases:
        candidates.setdefault(case.division_code, []).append(case)
    numbers: dict[str, int] = {}
    outcomes: list[Outcome | None] = [None] * len(group)
    first_with_key: dict[str, int] = {}
    new_cases: list[NewCase] = []
    repeats: list[RepeatReport] = []
    for i, p in enumerate(group):
        key = p.idempotency_key
        if key in earlier:
            outcomes[i] = answer_retry(earlier[key], p)
            continue
        if key in first_with_key:
            continue  # told the first one's outcome below, once every outcome is known
        if key:
            first_with_key[key] = i
        sub = p.submission
        division = sub.location.division_code
        match = find_duplicate(sub, received_at, candidates.get(division, []), policy)
        if match:
            case, score = match
            report = RepeatReport(new_id(), case.case_id, case.case_number, score, p)
            repeats.append(report)
            outcomes[i] = Outcome(case.case_id, case.case_number, report.submission_id, duplicate=True)
            continue
        prefix = case_number_prefix(division, received_at)
        numbers[prefix] = numbers.get(prefix, last_numbers[prefix]) + 1
        new = NewCase(new_id(), format_case_number(prefix, numbers[prefix]), p)
        new_cases.append(new)
        outcomes[i] = Outcome(new.case_id, new.case_number, new.case_id)
        # a later report in the same group may repeat this one
        candidates.setdefault(division, []).append(OpenCase(
            new.case_id, new.case_number, division, sub.category, f"{sub.title} {sub.description}", received_at))
    for i, p in enumerate(group):
        if outcomes[i] is None:
            first = outcomes[first_with_key[p.idempotency_key]]
            outcomes[i] = Outcome(first.case_id, first.case_number, first.submission_id, first.duplicate,
                                  replayed=True)
    announcements = [
        Announcement(received_event(c.case_id, c.case_number, c.pending.submission, received_at,
                                    c.pending.submission_ref),
                     derive_id(SOURCE, c.case_id, "received"), c.pending.traceparent, c.pending.actor)
        for c in new_cases
    ] + [
        Announcement(duplicate_event(r, received_at), derive_id(SOURCE, r.submission_id, "duplicate"),
                     r.pending.traceparent, r.pending.actor)
        for r in repeats
    ]
    return GroupPlan(received_at, new_cases, repeats, numbers, announcements, outcomes)


# ---------------------------------------------------------------- the status a submitter sees


class CaseStatus(StrEnum):
    """The status a submitter sees, in the order a case moves through it."""

    RECEIVED = "received"
    AWAITING_TRIAGE = "awaiting_manual_triage"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REFUSED = "refused"  # 不予受理
    MERGED = "merged"  # 并单: follows another case


STATUS_RANK = {s: i for i, s in enumerate(CaseStatus)}

# What each event the submitter should know of means for the status (other events leave it alone).
STATUS_OF_EVENT: dict[str, CaseStatus] = {
    ManualTriageRequired.EVENT_TYPE: CaseStatus.AWAITING_TRIAGE,
    CaseRouted.EVENT_TYPE: CaseStatus.DISPATCHED,
    DispatchAccepted.EVENT_TYPE: CaseStatus.IN_PROGRESS,
    DispatchResolved.EVENT_TYPE: CaseStatus.RESOLVED,
    CaseClosed.EVENT_TYPE: CaseStatus.CLOSED,
    CaseClosedDirectly.EVENT_TYPE: CaseStatus.CLOSED,  # 直接办结
    CaseRefused.EVENT_TYPE: CaseStatus.REFUSED,
    CaseMerged.EVENT_TYPE: CaseStatus.MERGED,
}


def advance(current: CaseStatus, new: CaseStatus) -> CaseStatus:
    """Statuses only move forward: a late or redelivered event never moves a case back."""
    return new if STATUS_RANK[new] > STATUS_RANK[current] else current


def status_moves(events: Iterable[tuple[str, str]]) -> dict[str, CaseStatus]:
    """The furthest status each case's events (event type, case id) announce; cases whose events say
    nothing of the status are left out."""
    moves: dict[str, CaseStatus] = {}
    for event_type, case_id in events:
        status = STATUS_OF_EVENT.get(event_type)
        if status:
            moves[case_id] = advance(moves.get(case_id, CaseStatus.RECEIVED), status)
    return moves


def moved_statuses(current: Mapping[str, CaseStatus], moves: Mapping[str, CaseStatus]) -> dict[str, CaseStatus]:
    """The cases whose status the moves change, with their new status (never backwards; cases
    intake does not know are left out)."""
    changed = {case_id: advance(status, moves[case_id]) for case_id, status in current.items() if case_id in moves}
    return {case_id: new for case_id, new in changed.items() if new != current[case_id]}


def grid_report(sub: CaseSubmission, grids: GridDirectory, subject: str, token_grid: str | None) -> CaseSubmission:
    """A grid worker's report (role grid, channel grid), placed in the worker's grid: the grid comes
    from the token or the grid directory, never from the body. Raises GridRefusal when the report
    lies outside the worker's grid."""
    grid = grid_of_report(grids, subject, token_grid, sub.location.division_code, sub.location.grid_id)
    return sub.model_copy(update={"location": sub.location.model_copy(update={"grid_id": grid.id})})
