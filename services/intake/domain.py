"""Intake's domain, as plain Python: who may submit and read what, case numbers, duplicate reports
(重复件), the plan for a group of submissions with the facts it announces, and the status a
submitter sees."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Callable, Iterable, Mapping, Sequence
from uuid import UUID

from pydantic import ValidationError

from shared import personal
from shared.cloudevents import Actor, derive_id
from shared.contracts import AttachmentRef, CaseDuplicateReported, CaseReceived, Channel, Location, status
from shared.contracts.events import CaseRated, ReopenRequested
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


# Who may finish or refuse a report at the window (直接办结 / 不予受理) as they take it.
DISPOSING_ROLES = frozenset({"clerk", "hotline"})


def may_dispose(role: str, submission: CaseSubmission) -> bool:
    """Whether a role may submit this report with a disposition (any role may submit one without)."""
    return submission.disposition is None or role in DISPOSING_ROLES


def may_read(role: str, reader: str, submitted_by: str) -> bool:
    """Whether a reader (already within the case's jurisdiction) may see a submission: staff see every
    one, the others only their own."""
    return role in STAFF_ROLES or submitted_by == reader


def validate_submission(data: object, divisions: DivisionDirectory, grids: GridDirectory | None = None) -> CaseSubmission:
    """The submission contract, division codes checked against the directory (and grid ids against
    the grid directory when given)."""
    return CaseSubmission.model_validate(data, context={"divisions": divisions, "grids": grids})


def validate_submission_json(body: bytes, divisions: DivisionDirectory,
                             grids: GridDirectory | None = None) -> CaseSubmission:
    """The submission contract from a request body's bytes, parsed and validated in one pass (pydantic's
    JSON mode). A body it refuses is read again as before — `json.loads`, then the contract — so that a
    refusal says exactly what it always said (not JSON: ValueError; otherwise each field's error in
    the Python mode's words), and a body that `json.loads` reads (UTF-16, a byte-order mark) is still
    accepted."""
    try:
        return CaseSubmission.model_validate_json(body, context={"divisions": divisions, "grids": grids})
    except ValidationError:
        pass
    return validate_submission(json.loads(body), divisions, grids)


def fingerprint(sub: CaseSubmission) -> str:
    """A hash of the submission, to tell a retry (same body) from a reused idempotency key."""
    return hashlib.sha256(json.dumps(sub.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def case_number_prefix(division_code: str, received_at: datetime) -> str:
    """County code + local date: '339901-20261123'."""
    return _prefix(division_code[:6], received_at)


@lru_cache(maxsize=4096)  # a group's submissions share their time: one date formatting per county and group
def _prefix(county: str, received_at: datetime) -> str:
    return f"{county}-{received_at.astimezone(CHINA_TZ):%Y%m%d}"


def format_case_number(prefix: str, sequence: int) -> str:
    """A case number people can read and say on the phone: '339901-20261123-00042'."""
    return f"{prefix}-{sequence:05d}"


# whitespace (as str.isspace says) and punctuation do not count in a text's bigrams
_NOT_TEXT = re.compile(r"[\s，。！？、,.!?;；:：()（）]+")


def _bigrams(text: str) -> set[int]:
    """The text's character bigrams (each as one int: the two code points side by side, smaller and
    quicker to compare than 2-character strings), or its characters when it has a single one."""
    chars = list(map(ord, _NOT_TEXT.sub("", text)))
    return {a << 21 | b for a, b in zip(chars, chars[1:])} or set(chars)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams: robust for Chinese text without segmentation."""
    return _jaccard(_bigrams(a), _bigrams(b))


def _jaccard(x: set[int] | frozenset[int], y: set[int] | frozenset[int]) -> float:
    if not x or not y:
        return 0.0
    common = len(x & y)
    return common / (len(x) + len(y) - common)  # |x ∪ y| without building it


@dataclass(frozen=True)
class OpenCase:
    """A case that a new report may repeat."""

    case_id: UUID
    case_number: str
    division_code: str
    category: str | None
    text: str
    received_at: datetime
    bigrams: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not self.bigrams:  # computed once per case (storage keeps open cases across groups), not per comparison
            object.__setattr__(self, "bigrams", frozenset(_bigrams(self.text)))


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
    size = len(text)
    division, category, since = sub.location.division_code, sub.category, received_at - policy.window
    # the similarity is at most the ratio of the two sizes: a candidate whose ratio is below this (a
    # margin under the threshold, for the rounding of the score) cannot reach the threshold
    reach = policy.threshold - 0.001
    best: tuple[OpenCase, float] | None = None
    for case in open_cases:
        if case.division_code != division or case.category != category:
            continue
        if not (since <= case.received_at <= received_at):
            continue
        bigrams = case.bigrams
        other = len(bigrams)
        if size and other and (size < reach * other if size < other else other < reach * size):
            continue
        common = len(text & bigrams) if size and other else 0
        score = round(common / (size + other - common), 3) if common else 0.0  # Jaccard, |x ∪ y| not built
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
        disposition=sub.disposition,
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
    opened: list[OpenCase] = field(default_factory=list)  # the new cases, as later reports may repeat them


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
    opened: list[OpenCase] = []
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
        # a later report in the same group (or a later group) may repeat this one
        opened.append(OpenCase(new.case_id, new.case_number, division, sub.category, f"{sub.title} {sub.description}",
                               received_at))
        candidates.setdefault(division, []).append(opened[-1])
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
    return GroupPlan(received_at, new_cases, repeats, numbers, announcements, outcomes, opened)


# ---------------------------------------------------------------- the status a submitter sees


# The vocabulary and the projection rule are shared (shared.contracts.status): intake, audit and the
# router say the same status for the same events.
CaseStatus = status.CaseStatus
Standing = status.Standing
FINISHED = status.FINISHED


def standings_after(current: Mapping[str, Standing], events: Iterable[tuple[str, str, dict, datetime]]
                    ) -> dict[str, Standing]:
    """The standings of known cases after events (type, case id, data, time) in the order consumed;
    only the cases whose standing changed are returned (cases intake does not know are left out)."""
    work = {c: replace(s) for c, s in current.items()}
    for event_type, case_id, data, at in events:
        if case_id in work:
            status.project(work[case_id], event_type, data, at)
    return {c: s for c, s in work.items() if s != current[c]}


# ---------------------------------------------------------------- the citizen's own acts: 评价 and 申请重办

# Statuses in which a citizen may rate a case, or ask to reopen it (the router decides a reopening).
RATABLE = frozenset({CaseStatus.RESOLVED, CaseStatus.CLOSED})
REOPENABLE = frozenset({CaseStatus.RESOLVED, CaseStatus.CLOSED})


class CitizenActRefused(ValueError):
    """A rating or reopen request that the case's status or the window does not allow (409)."""


def _digits(phone: str | None) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def reporter_verified(stored_phone: str | None, given: str) -> bool:
    """Whether the verification given (the reporter's phone number, as 12345 platforms ask with the case
    number) matches the reporter's; compared in constant time. A case without a reporter's phone
    cannot be verified."""
    stored, offered = _digits(stored_phone), _digits(given)
    return bool(stored) and hmac.compare_digest(stored.encode(), offered.encode())


def check_rating(status_now: CaseStatus, already_rated: bool) -> None:
    """A case is rated once, after the unit resolved it."""
    if status_now not in RATABLE:
        raise CitizenActRefused(f"a case is rated once it is resolved (it is {status_now.value})")
    if already_rated:
        raise CitizenActRefused("this case has been rated already")


def check_reopen(status_now: CaseStatus, since: datetime | None, now: datetime, window: timedelta) -> None:
    """A resolved case, or one closed within the reopening window, may be asked to be reopened."""
    if status_now not in REOPENABLE:
        raise CitizenActRefused(f"only a resolved or closed case can be reopened (it is {status_now.value})")
    if status_now is CaseStatus.CLOSED and (since is None or now - since > window):
        raise CitizenActRefused(f"a closed case can be reopened within {window.days} days of its closure")


def rating_event(case_id: UUID, case_number: str, rating: str, comment: str | None) -> tuple[CaseRated, str]:
    """The rating's event and its id (one rating per case)."""
    return (CaseRated(case_id=case_id, case_number=case_number, rating=rating, comment=comment),
            derive_id(SOURCE, case_id, "rated"))


def reopen_event(case_id: UUID, case_number: str, reason: str, since: datetime | None
                 ) -> tuple[ReopenRequested, str]:
    """The reopen request's event and its id (one request per status the case reached: asking twice
    about the same closure is the same request)."""
    return (ReopenRequested(case_id=case_id, case_number=case_number, reason=reason),
            derive_id(SOURCE, case_id, "reopen", since.isoformat() if since else ""))


def grid_report(sub: CaseSubmission, grids: GridDirectory, subject: str, token_grid: str | None) -> CaseSubmission:
    """A grid worker's report (role grid, channel grid), placed in the worker's grid: the grid comes
    from the token or the grid directory, never from the body. Raises GridRefusal when the report
    lies outside the worker's grid."""
    grid = grid_of_report(grids, subject, token_grid, sub.location.division_code, sub.location.grid_id)
    return sub.model_copy(update={"location": sub.location.model_copy(update={"grid_id": grid.id})})
