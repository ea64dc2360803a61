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
        if to is Status.SCHEDULED and self.status is not Status.ASSIGNED and self.status is not Status.HELD:
            raise IllegalTransition("only an assigned or heard mediation schedules a session")
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


def success_rate(outcomes: list[Status]) -> float | None:
    """调解成功率: agreements over finished mediations (None when none finished)."""
    finished = [o for o in outcomes if o in OUTCOMES or o in (Status.CONFIRMATION_REQUESTED, Status.CONFIRMED,
                                                                Status.CONFIRMATION_REFUSED)]
    if not finished:
        return None
    agreed = [o for o in finished if o in (Status.AGREED, Status.CONFIRMATION_REQUESTED, Status.CONFIRMED,
                                           Status.CONFIRMATION_REFUSED)]
    return round(len(agreed) / len(finished), 3)
