"""Routing rules and the per-case lifecycle as plain Python (no broker, no database).

Reference data (matter catalogue, unit directory) is loaded from versioned TOML files and
validated at start; every decision names the rules that made it and the catalogue version.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts import CaseReceived
from shared.contracts.events import Level
from shared.topics import UnitKind

REFERENCE = Path(__file__).parent / "reference"
LEVEL_ORDER = [Level.GRID, Level.VILLAGE, Level.TOWN, Level.COUNTY, Level.CITY]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Frozen):
    """One matter in the catalogue (事项)."""

    code: str
    name: str
    unit_kind: UnitKind
    level: Level
    acknowledge_hours: Annotated[float, Field(gt=0)]
    resolve_hours: Annotated[float, Field(gt=0)]
    phrases: tuple[tuple[str, Annotated[float, Field(gt=0)]], ...] = ()


class Catalogue(_Frozen):
    """The matter catalogue (事项清单), versioned."""

    version: str
    manual_threshold: Annotated[float, Field(ge=0, le=1)]
    category: tuple[Category, ...]

    @field_validator("category")
    @classmethod
    def _unique_codes(cls, value: tuple[Category, ...]) -> tuple[Category, ...]:
        codes = [c.code for c in value]
        if len(codes) != len(set(codes)):
            raise ValueError("category codes must be unique")
        return value

    def get(self, code: str) -> Category | None:
        """The category with this code, if catalogued."""
        return next((c for c in self.category if c.code == code), None)


class Unit(_Frozen):
    """A unit cases can be dispatched to."""

    id: str
    name: str
    kind: UnitKind
    level: Level
    serves: tuple[Annotated[str, Field(pattern=r"^\d{4,12}$")], ...]


class UnitDirectory(_Frozen):
    """The unit directory, versioned."""

    version: str
    unit: tuple[Unit, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> "UnitDirectory":
        ids = [u.id for u in self.unit]
        if len(ids) != len(set(ids)):
            raise ValueError("unit ids must be unique")
        return self

    def get(self, unit_id: str) -> Unit | None:
        """The unit with this id."""
        return next((u for u in self.unit if u.id == unit_id), None)


def load_catalogue(path: Path = REFERENCE / "catalogue.toml") -> Catalogue:
    """Read and validate the matter catalogue (fails at start-up, not at the first case)."""
    return Catalogue.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


def load_units(path: Path = REFERENCE / "units.toml") -> UnitDirectory:
    """Read and validate the unit directory."""
    return UnitDirectory.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Triage:
    """Which category a case is, how sure, and the rules that said so."""

    category: Category
    confidence: float
    rule_ids: tuple[str, ...]


def triage(case: CaseReceived, catalogue: Catalogue) -> Triage | None:
    """The category: as given when catalogued, else by weighted phrases over title + description.

    Confidence is the best category's share of all phrase weight found, capped by how much weight it
    found (one weak phrase is not enough). None when nothing matched.
    """
    if case.category and (given := catalogue.get(case.category)):
        return Triage(given, 1.0, (f"category:{given.code}",))
    text = f"{case.title} {case.description}"
    scores: list[tuple[float, Category, tuple[str, ...]]] = []
    for cat in catalogue.category:
        hits = tuple(p for p, _w in cat.phrases if p in text)
        score = sum(w for p, w in cat.phrases if p in hits)
        if score:
            scores.append((score, cat, hits))
    if not scores:
        return None
    scores.sort(key=lambda s: (-s[0], s[1].code))
    best, cat, hits = scores[0]
    total = sum(s[0] for s in scores)
    confidence = round(min(1.0, best) * best / total, 3)
    return Triage(cat, confidence, tuple(f"phrase:{cat.code}:{h}" for h in hits))


def find_unit(units: UnitDirectory, kind: UnitKind, level: Level, division_code: str) -> Unit | None:
    """The unit of `kind` serving the division, at `level` or, failing that, the nearest level above.

    Among units at one level the most specific jurisdiction (longest served code) wins.
    """
    start = LEVEL_ORDER.index(level)
    for lvl in LEVEL_ORDER[start:]:
        candidates = [
            (max(len(s) for s in u.serves if division_code.startswith(s)), u.id, u)
            for u in units.unit
            if u.kind == kind and u.level == lvl and any(division_code.startswith(s) for s in u.serves)
        ]
        if candidates:
            candidates.sort(key=lambda c: (-c[0], c[1]))
            return candidates[0][2]
    return None


@dataclass(frozen=True)
class Dispatch:
    """The decision to hand a case to one unit, with its deadlines."""

    category: Category
    unit: Unit
    confidence: float
    rule_ids: tuple[str, ...]
    acknowledge_by: datetime
    resolve_by: datetime


@dataclass(frozen=True)
class ManualQueue:
    """The decision that a person must triage the case."""

    reason: str


def route(case: CaseReceived, catalogue: Catalogue, units: UnitDirectory) -> Dispatch | ManualQueue:
    """Decide who handles a case. Deterministic: deadlines run from the case's received time."""
    t = triage(case, catalogue)
    if t is None:
        return ManualQueue("no catalogue rule matched the category or the text")
    if t.confidence < catalogue.manual_threshold:
        return ManualQueue(f"triage confidence {t.confidence} below {catalogue.manual_threshold}")
    unit = find_unit(units, t.category.unit_kind, t.category.level, case.location.division_code)
    if unit is None:
        return ManualQueue(f"no {t.category.unit_kind.value} unit serves division {case.location.division_code}")
    rule_ids = (*t.rule_ids, f"jurisdiction:{unit.level.value}:{unit.id}")
    return Dispatch(
        category=t.category,
        unit=unit,
        confidence=t.confidence,
        rule_ids=rule_ids,
        acknowledge_by=case.received_at + timedelta(hours=t.category.acknowledge_hours),
        resolve_by=case.received_at + timedelta(hours=t.category.resolve_hours),
    )


class CaseStatus(StrEnum):
    """Where a case stands in the router's eyes."""

    MANUAL = "manual_triage"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    CLOSED = "closed"


class FeedbackRefused(ValueError):
    """Feedback that does not fit the case (unknown case, another dispatch or unit, closed case)."""


@dataclass
class RoutingState:
    """The router's state of one case."""

    case_id: str
    case_number: str
    status: CaseStatus
    catalogue_version: str
    decided_at: datetime
    dispatch_id: str | None = None
    unit_id: str | None = None
    unit_kind: str | None = None
    category: str | None = None
    rule_ids: tuple[str, ...] = ()

    def check_feedback(self, dispatch_id: str, unit_id: str) -> None:
        """Refuse feedback about a dispatch that is not this case's current one."""
        if self.dispatch_id != dispatch_id or self.unit_id != unit_id:
            raise FeedbackRefused("feedback does not match the case's current dispatch and unit")

    def accept(self, dispatch_id: str, unit_id: str) -> bool:
        """签收. Returns whether the state changed (a repeated accept or a late one changes nothing)."""
        self.check_feedback(dispatch_id, unit_id)
        if self.status is CaseStatus.DISPATCHED:
            self.status = CaseStatus.ACCEPTED
            return True
        return False

    def resolve(self, dispatch_id: str, unit_id: str) -> bool:
        """办结: closes the case. Returns whether the state changed."""
        self.check_feedback(dispatch_id, unit_id)
        if self.status in (CaseStatus.DISPATCHED, CaseStatus.ACCEPTED):
            self.status = CaseStatus.CLOSED
            return True
        return False
