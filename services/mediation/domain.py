"""Mediation as plain Python: committees and mediators, choosing a mediator, and the mediation
lifecycle state machine (三调联动 from dispatches, 诉调对接 with the court)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCE = "/onewindow/mediation"
REFERENCE = Path(__file__).parent / "reference" / "committees.toml"
TIME_LIMIT = timedelta(days=30)  # people's mediation / pre-litigation mediation: 30 days…
EXTENSION = timedelta(days=30)  # …extendable once with the parties' consent


class Committee(BaseModel):
    """A mediation committee (调委会) or dispute-resolution centre."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    level: str
    serves: tuple[str, ...]
    specialties: tuple[str, ...] = ()


class Mediator(BaseModel):
    """A mediator (调解员) of one committee, with specialties and a caseload capacity."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    committee: str
    specialties: tuple[str, ...] = ()
    capacity: int = Field(ge=1, le=100)


class Directory(BaseModel):
    """Committees and mediators, versioned; every mediator belongs to a listed committee."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    committee: tuple[Committee, ...]
    mediator: tuple[Mediator, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "Directory":
        ids = {c.id for c in self.committee}
        orphans = [m.id for m in self.mediator if m.committee not in ids]
        if orphans:
            raise ValueError(f"mediators of unknown committees: {orphans}")
        return self

    def committee_of(self, committee_id: str) -> Committee | None:
        """The committee with this id."""
        return next((c for c in self.committee if c.id == committee_id), None)

    def mediators_of(self, committee_id: str) -> list[Mediator]:
        """The committee's mediators."""
        return [m for m in self.mediator if m.committee == committee_id]


def load_directory(path: Path = REFERENCE) -> Directory:
    """Read and validate the committees and mediators."""
    return Directory.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


def choose_mediator(directory: Directory, committee_id: str, specialty: str | None,
                    loads: dict[str, int]) -> Mediator | None:
    """The committee's mediator with spare capacity: specialty first, then the lightest load, then id.

    None when every mediator is at capacity (the case goes back to the router with that reason).
    """
    free = [m for m in directory.mediators_of(committee_id) if loads.get(m.id, 0) < m.capacity]
    if not free:
        return None
    free.sort(key=lambda m: (not (specialty and specialty in m.specialties), loads.get(m.id, 0) / m.capacity, m.id))
    return free[0]


@dataclass(frozen=True)
class Placement:
    """Who takes a mediation: a committee, one of its mediators, and the specialty it was matched on."""

    committee: Committee
    mediator: Mediator
    specialty: str | None


def place_dispatch(directory: Directory, unit_id: str, loads: dict[str, int]) -> Placement | str:
    """三调联动: the dispatched committee's mediator with spare capacity, or why the case goes back.

    The committee's first specialty (if any) is what its mediators are matched on.
    """
    committee = directory.committee_of(unit_id)
    if committee is None:
        return f"{unit_id} is not a mediation committee of this system"
    specialty = committee.specialties[0] if committee.specialties else None
    mediator = choose_mediator(directory, committee.id, specialty, loads)
    if mediator is None:
        return f"no mediator of {committee.name} has spare capacity"
    return Placement(committee, mediator, specialty)


def place_referral(directory: Directory, division_code: str, specialty: str | None,
                   loads: dict[str, int]) -> Placement | None:
    """诉前调解: a county committee serving the court's division, specialists first, then by id, whose
    mediator has spare capacity; None when none has (the court is told the referral was not taken)."""
    candidates = [c for c in directory.committee
                  if c.level == "county" and any(division_code.startswith(s) for s in c.serves)
                  and (not c.specialties or specialty in c.specialties)]
    candidates.sort(key=lambda c: (not (specialty and specialty in c.specialties), c.id))
    for committee in candidates:
        if mediator := choose_mediator(directory, committee.id, specialty, loads):
            return Placement(committee, mediator, specialty)
    return None


class Status(StrEnum):
    """Mediation states."""

    ASSIGNED = "assigned"
    SCHEDULED = "session_scheduled"
    HELD = "session_held"
    AGREED = "agreement_reached"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    CONFIRMATION_REQUESTED = "confirmation_requested"  # 司法确认 requested from the court
    CONFIRMED = "confirmed"
    CONFIRMATION_REFUSED = "confirmation_refused"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ASSIGNED: frozenset({Status.SCHEDULED, Status.WITHDRAWN, Status.EXPIRED}),
    Status.SCHEDULED: frozenset({Status.HELD, Status.WITHDRAWN, Status.EXPIRED}),
    Status.HELD: frozenset({Status.SCHEDULED, Status.AGREED, Status.FAILED, Status.WITHDRAWN, Status.EXPIRED}),
    Status.AGREED: frozenset({Status.CONFIRMATION_REQUESTED}),
    Status.CONFIRMATION_REQUESTED: frozenset({Status.CONFIRMED, Status.CONFIRMATION_REFUSED}),
}
OPEN = frozenset({Status.ASSIGNED, Status.SCHEDULED, Status.HELD})
OUTCOMES = frozenset({Status.AGREED, Status.FAILED, Status.WITHDRAWN, Status.EXPIRED})
# An agreement stays a success whatever the court later says of it (调解成功率 counts agreements).
AGREEMENTS = frozenset({Status.AGREED, Status.CONFIRMATION_REQUESTED, Status.CONFIRMED, Status.CONFIRMATION_REFUSED})
# What a mediator's action asks for ("extend" is no transition; "expire" is the time limit's own act).
ACTIONS: dict[str, Status] = {"schedule": Status.SCHEDULED, "hold": Status.HELD, "agree": Status.AGREED,
                              "fail": Status.FAILED, "withdraw": Status.WITHDRAWN,
                              "confirm": Status.CONFIRMATION_REQUESTED, "expire": Status.EXPIRED}


class IllegalTransition(ValueError):
    """A transition the state machine does not allow."""


@dataclass
class Mediation:
    """One mediation of a case by a committee and a mediator."""

    mediation_id: str
    case_id: str
    origin: str  # "dispatch" (from the router) | "court_referral" (诉前调解)
    committee_id: str
    mediator_id: str
    status: Status
    started_at: datetime
    deadline: datetime
    sessions: int = 0
    extended: bool = False
    agreement: dict | None = None
    history: list[dict] = field(default_factory=list)

    def move(self, to: Status, now: datetime, **details) -> dict:
        """Apply a transition; returns its record. Raises IllegalTransition."""
        if to not in TRANSITIONS.get(self.status, frozenset()):
            raise IllegalTransition(f"{self.status.value} → {to.value} is not allowed")
        if to is Status.HELD:
            self.sessions += 1
        if to is Status.AGREED:
            self.agreement = details.get("agreement")
        record = {"from": self.status.value, "to": to.value, "at": now.isoformat(), **details}
        self.status = to
        self.history.append(record)
        return record

    def extend(self) -> None:
        """Extend the time limit once (延期)."""
        if self.extended or self.status not in OPEN:
            raise IllegalTransition("a mediation is extended once, while open")
        self.extended = True
        self.deadline += EXTENSION

    def overdue(self, now: datetime) -> bool:
        """Whether the statutory time limit has passed on an open mediation."""
        return self.status in OPEN and now >= self.deadline


def new_mediation(mediation_id: str, case_id: str, origin: str, committee_id: str, mediator_id: str,
                  now: datetime) -> Mediation:
    """A mediation just assigned to a mediator."""
    return Mediation(mediation_id, case_id, origin, committee_id, mediator_id, Status.ASSIGNED, now,
                     now + TIME_LIMIT)


def start(mediation_id: str, case_id: str, origin: str, placement: Placement, now: datetime) -> Mediation:
    """A mediation assigned to the placement's mediator, the assignment recorded as its first step."""
    m = new_mediation(mediation_id, case_id, origin, placement.committee.id, placement.mediator.id, now)
    m.history.append({"from": None, "to": Status.ASSIGNED.value, "at": now.isoformat()})
    return m


def apply_action(m: Mediation, action: str, now: datetime, *, note: str | None = None,
                 agreement: dict | None = None) -> dict:
    """A mediator's action (or the time limit's "expire") on a mediation; returns the history record.

    Raises IllegalTransition when the mediation's state does not allow it.
    """
    if action == "extend":
        m.extend()
        record = {"from": m.status.value, "to": m.status.value, "at": now.isoformat(), "note": "期限延长"}
        m.history.append(record)
        return record
    details = {k: v for k, v in (("note", note), ("agreement", agreement)) if v is not None}
    return m.move(ACTIONS[action], now, **details)


def committee_figures(rows: list[dict], loads: dict[str, int], directory: Directory) -> dict:
    """The command centre's figures from per-committee counts (committee_id, finished, agreed, days,
    open): success rate and days to outcome per committee, success rate per level and per specialty
    (a committee's first; "general" without one), and open mediations per mediator."""
    def rate(agreed: int, finished: int) -> float | None:
        return round(agreed / finished, 3) if finished else None

    by_level: dict[str, list[int]] = {}
    by_specialty: dict[str, list[int]] = {}
    committees = []
    for r in rows:
        c = directory.committee_of(r["committee_id"])
        level = c.level if c else "unknown"
        spec = c.specialties[0] if c and c.specialties else "general"
        for bucket, key in ((by_level, level), (by_specialty, spec)):
            agg = bucket.setdefault(key, [0, 0])
            agg[0] += r["agreed"]
            agg[1] += r["finished"]
        committees.append({"committee_id": r["committee_id"], "finished": r["finished"], "agreed": r["agreed"],
                           "success_rate": rate(r["agreed"], r["finished"]),
                           "average_days": round(float(r["days"]), 2) if r["days"] is not None else None,
                           "open": r["open"]})
    return {"by_committee": committees,
            "by_level": {k: rate(*v) for k, v in by_level.items()},
            "by_specialty": {k: rate(*v) for k, v in by_specialty.items()},
            "open_by_mediator": dict(sorted(loads.items()))}


def success_rate(outcomes: list[Status]) -> float | None:
    """调解成功率: agreements over finished mediations (None when none finished)."""
    finished = [o for o in outcomes if o in OUTCOMES or o in AGREEMENTS]
    if not finished:
        return None
    return round(sum(o in AGREEMENTS for o in finished) / len(finished), 3)
