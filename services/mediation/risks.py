"""The risk register (重大不稳定问题清单 / 矛盾纠纷台账) as plain Python: the weighted five-colour
score (五色预警, weights as data in reference/risks.toml), the lifecycle as a table, 三色户 care with
its 包保 level, and the clustering of related cases into a risk. No I/O: the handlers load, call
these and save."""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.cloudevents import ID_NAMESPACE
from shared.contracts.events import RiskGrade, RiskStatus

WEIGHTS_FILE = Path(__file__).parent / "reference" / "risks.toml"

# What a risk's score is made of (each a number the weights turn into points).
FACTORS = ("cases", "repeat_reports", "group_signs", "violence", "vulnerable", "assessment")
GROUP_FLAG = "group_incident"
VIOLENCE_FLAGS = frozenset({"violence", "weapons"})
VULNERABLE_FLAGS = frozenset({"minors", "elderly", "mental_health"})


class Factor(BaseModel):
    """One factor's weight (points out of 100) and the value at which it earns them all."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    weight: float = Field(ge=0, le=100)
    full: float = Field(gt=0)


class Grade(BaseModel):
    """A colour and the lowest score that takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    colour: RiskGrade
    from_: float = Field(alias="from", ge=0, le=100)


class ClusterRules(BaseModel):
    """When related cases open a risk by themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window_days: int = Field(ge=1, le=365)
    min_cases: int = Field(ge=2, le=100)
    group_people: int = Field(ge=2, le=100000)


class Weights(BaseModel):
    """The register's scoring and clustering rules (versioned reference data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    factor: dict[str, Factor]
    grade: tuple[Grade, ...]
    cluster: ClusterRules

    @model_validator(mode="after")
    def _consistent(self) -> "Weights":
        if set(self.factor) != set(FACTORS):
            raise ValueError(f"factors must be exactly {FACTORS}, got {sorted(self.factor)}")
        total = sum(f.weight for f in self.factor.values())
        if abs(total - 100) > 1e-9:
            raise ValueError(f"factor weights must add up to 100, they add up to {total}")
        bounds = [g.from_ for g in self.grade]
        if bounds != sorted(bounds, reverse=True) or len(set(bounds)) != len(bounds) or bounds[-1] != 0:
            raise ValueError("grades must be listed from the highest score down, ending at 0")
        if {g.colour for g in self.grade} != set(RiskGrade) or len(self.grade) != len(RiskGrade):
            raise ValueError("each of the five colours needs exactly one grade")
        return self

    @property
    def window(self) -> timedelta:
        """How close in time related cases must be."""
        return timedelta(days=self.cluster.window_days)


def load_weights(path: Path = WEIGHTS_FILE) -> Weights:
    """The scoring rules from their TOML (refuses an inconsistent file at start-up)."""
    return Weights.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------- the score


@dataclass
class Signal:
    """A received case as the register sees it: where, which matter, when, and its signs (no
    personal data: intake keeps the people)."""

    case_id: str
    division_code: str
    matter: str | None
    received_at: datetime
    people_involved: int | None = None
    flags: frozenset[str] = frozenset()
    repeats: int = 0  # times the same matter was reported again

    def group_signs(self, rules: ClusterRules) -> bool:
        """Whether the case shows signs of a group matter (群体性)."""
        return GROUP_FLAG in self.flags or (self.people_involved or 0) >= rules.group_people

    @property
    def cluster_key(self) -> str | None:
        """Cases of the same place (division) and the same matter are related; without a matter, none."""
        return f"{self.division_code}|{self.matter}" if self.matter else None


def matter_of(category: str | None) -> str | None:
    """The matter a case's category belongs to (catalogue domain.matter: "dispute.neighbourhood"
    of "dispute.neighbourhood.noise"): a leaking pipe and a barking dog next door are one 邻里纠纷."""
    return ".".join(category.split(".")[:2]) if category else None


def factors_of(signals: Iterable[Signal], weights: Weights, assessment: float = 0.0) -> dict[str, float]:
    """A risk's factors from its cases and the operator's assessment."""
    signals = list(signals)
    return {
        "cases": float(len(signals)),
        "repeat_reports": float(sum(s.repeats for s in signals)),
        "group_signs": float(sum(s.group_signs(weights.cluster) for s in signals)),
        "violence": float(sum(bool(s.flags & VIOLENCE_FLAGS) for s in signals)),
        "vulnerable": float(sum(bool(s.flags & VULNERABLE_FLAGS) for s in signals)),
        "assessment": float(assessment),
    }


def score_of(factors: dict[str, float], weights: Weights) -> float:
    """The weighted score out of 100: each factor earns its weight in proportion to its value's
    reach of `full` (capped), rounded to one decimal."""
    points = sum(f.weight * min(max(factors.get(name, 0.0), 0.0) / f.full, 1.0) for name, f in weights.factor.items())
    return round(min(points, 100.0), 1)


def colour_of(score: float, weights: Weights) -> RiskGrade:
    """The colour a score takes (the first grade whose lower bound it reaches)."""
    return next(g.colour for g in weights.grade if score >= g.from_)


# ---------------------------------------------------------------- the lifecycle


class RefusedTransition(Exception):
    """An act the risk's state does not allow (answered 409 over HTTP)."""


OPEN = frozenset({RiskStatus.IDENTIFIED, RiskStatus.ASSESSED, RiskStatus.GUARDED, RiskStatus.RESOLVING})

# (status, act) → the status after it. Anything not listed is refused. Reassessing and handing the
# 包保 to another leader keep the status; closed and escalated risks are finished here (an escalated
# risk is the higher level's to carry).
TRANSITIONS: dict[tuple[RiskStatus, str], RiskStatus] = {
    (RiskStatus.IDENTIFIED, "assess"): RiskStatus.ASSESSED,
    (RiskStatus.ASSESSED, "assess"): RiskStatus.ASSESSED,
    (RiskStatus.GUARDED, "assess"): RiskStatus.GUARDED,
    (RiskStatus.RESOLVING, "assess"): RiskStatus.RESOLVING,
    (RiskStatus.ASSESSED, "guard"): RiskStatus.GUARDED,
    (RiskStatus.GUARDED, "guard"): RiskStatus.GUARDED,
    (RiskStatus.RESOLVING, "guard"): RiskStatus.RESOLVING,
    (RiskStatus.GUARDED, "resolve"): RiskStatus.RESOLVING,
    (RiskStatus.RESOLVING, "close"): RiskStatus.CLOSED,
    (RiskStatus.ASSESSED, "escalate"): RiskStatus.ESCALATED,
    (RiskStatus.GUARDED, "escalate"): RiskStatus.ESCALATED,
    (RiskStatus.RESOLVING, "escalate"): RiskStatus.ESCALATED,
    **{(s, "care"): s for s in OPEN},
}
ACTS = frozenset(a for _, a in TRANSITIONS)
CARE_COLOURS = ("red", "yellow", "green")  # 三色户
CARE_LEVELS = ("village", "town", "county")  # who carries the household's 包保


@dataclass
class Risk:
    """A risk of the register."""

    risk_id: str
    division_code: str
    title: str
    matter: str | None
    origin: str  # operator | cluster
    status: RiskStatus
    case_ids: list[str]
    factors: dict[str, float]
    score: float
    colour: RiskGrade
    opened_at: datetime
    cluster_key: str | None = None
    guardian: dict | None = None  # {"leader", "unit_id"}
    care: list[dict] = field(default_factory=list)  # 三色户: {"household", "colour", "level"}
    history: list[dict] = field(default_factory=list)

    def change(self, to: RiskStatus, now: datetime, *, act: str, actor: str | None, factors: dict | None = None,
               weights: Weights | None = None, reason: str | None = None) -> dict:
        """Record a change (status, factors and so score and colour) and return its history record,
        which carries what the `risk.changed` event says."""
        record = {"act": act, "from": self.status.value, "to": to.value, "previous_score": self.score,
                  "previous_colour": self.colour.value, "reason": reason, "actor": actor, "at": now.isoformat()}
        if factors is not None and weights is not None:
            self.factors = factors
            self.score = score_of(factors, weights)
            self.colour = colour_of(self.score, weights)
        self.status = to
        record.update(score=self.score, colour=self.colour.value)
        self.history.append(record)
        return record


def identify(risk_id: str, signals: list[Signal], weights: Weights, now: datetime, *, origin: str, title: str,
             division_code: str, actor: str | None, assessment: float = 0.0) -> Risk:
    """A new risk over these cases, scored by the weights."""
    factors = factors_of(signals, weights, assessment)
    score = score_of(factors, weights)
    matters = {s.matter for s in signals}
    risk = Risk(risk_id, division_code, title, matters.pop() if len(matters) == 1 else None, origin,
                RiskStatus.IDENTIFIED, [s.case_id for s in signals], factors, score, colour_of(score, weights), now,
                cluster_key=signals[0].cluster_key if origin == "cluster" else None)
    risk.history.append({"act": "identify", "from": None, "to": RiskStatus.IDENTIFIED.value, "score": score,
                         "colour": risk.colour.value, "actor": actor, "at": now.isoformat()})
    return risk


def act(risk: Risk, action: str, now: datetime, weights: Weights, signals: list[Signal], *, actor: str,
        assessment: float | None = None, guardian: dict | None = None, care: dict | None = None,
        reason: str | None = None) -> dict:
    """An operator's act on a risk: assess (with a severity 0–1), guard (包保 by a named leader and
    unit), resolve, close, escalate, or put a household under 三色 care. Raises RefusedTransition
    when the risk's status does not allow it, ValueError when the act lacks what it needs."""
    to = TRANSITIONS.get((risk.status, action))
    if to is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s is risk.status)
        raise RefusedTransition(f"a {risk.status.value} risk cannot be {action!r}ed"
                                f" (allowed: {', '.join(allowed) or 'nothing, it is finished'})")
    factors = None
    if action == "assess":
        if assessment is None or not 0 <= assessment <= 1:
            raise ValueError("an assessment gives a severity between 0 and 1")
        factors = factors_of(signals, weights, assessment)
    elif action == "guard":
        if not guardian or not guardian.get("leader") or not guardian.get("unit_id"):
            raise ValueError("包保 names a leader and a unit")
        risk.guardian = {"leader": guardian["leader"], "unit_id": guardian["unit_id"]}
    elif action == "care":
        if not care or care.get("colour") not in CARE_COLOURS or care.get("level") not in CARE_LEVELS \
                or not care.get("household"):
            raise ValueError("三色 care names a household, its colour (red, yellow, green) and its 包保 level")
        risk.care = [c for c in risk.care if c["household"] != care["household"]] + [
            {k: care[k] for k in ("household", "colour", "level")}]
        reason = reason or f"三色户 {care['household']}: {care['colour']} (包保 {care['level']})"
    elif action in ("close", "escalate") and not reason:
        raise ValueError(f"{action} records why")
    return risk.change(to, now, act=action, actor=actor, factors=factors, weights=weights, reason=reason)


# ---------------------------------------------------------------- clustering


def cluster_risk_id(key: str, first_case_ids: Iterable[str]) -> str:
    """A cluster's risk id, derived from its key and founding cases (a replay opens the same risk)."""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(["risk", key, *sorted(first_case_ids)])))


def cluster_title(division_name: str, matter: str, n: int) -> str:
    """A cluster's title: the place and the matter, never a person."""
    return f"{division_name} · {matter}：{n} 起关联案件"


@dataclass
class Clustering:
    """What the arrival of cases decides: new risks, and open risks that gained cases or repeats."""

    identified: list[Risk] = field(default_factory=list)
    changed: list[tuple[Risk, dict]] = field(default_factory=list)


def cluster(arrived: list[Signal], known: list[Signal], open_risks: list[Risk], taken: set[str], weights: Weights,
            now: datetime, name_of=lambda code: code) -> Clustering:
    """Decide on newly arrived (or re-reported) cases. `known` are the stored signals of the same
    keys (arrived ones included, with their repeats), `open_risks` the open cluster risks of those
    keys and `taken` the case ids already in any risk. A case joins its key's open risk; otherwise
    `min_cases` untaken related cases within the window open one. A case long after the open risk's
    latest case (beyond the window) joins nothing."""
    out = Clustering()
    by_id = {s.case_id: s for s in known}
    by_key: dict[str, list[Signal]] = {}
    for s in known:
        if s.cluster_key:
            by_key.setdefault(s.cluster_key, []).append(s)
    risks = {r.cluster_key: r for r in open_risks if r.status in OPEN}
    touched = list(dict.fromkeys(s.cluster_key for s in arrived if s.cluster_key))
    for risk in open_risks:  # a repeat report of a case already in a risk rescores it
        if risk.status in OPEN and any(s.case_id in risk.case_ids and s.repeats for s in arrived) \
                and risk.cluster_key not in touched:
            touched.append(risk.cluster_key)
    for key in touched:
        risk = risks.get(key)
        if risk is not None:
            # a case joins when it is related in time too: within the window of the risk's latest case
            latest = max((by_id[c].received_at for c in risk.case_ids if c in by_id), default=None)
            joined = [s.case_id for s in arrived if s.cluster_key == key and s.case_id not in risk.case_ids
                      and s.case_id not in taken
                      and (latest is None or abs(s.received_at - latest) <= weights.window)]
            members = [by_id[c] for c in [*risk.case_ids, *joined] if c in by_id]
            factors = factors_of(members, weights, risk.factors.get("assessment", 0.0))
            if not joined and factors == risk.factors:
                continue
            risk.case_ids = [*risk.case_ids, *joined]
            reason = f"{len(joined)} 起关联案件并入" if joined else "重复反映"
            out.changed.append((risk, risk.change(risk.status, now, act="cluster", actor=None, factors=factors,
                                                  weights=weights, reason=reason)))
            taken.update(joined)
            continue
        candidates = sorted((s for s in by_key.get(key, []) if s.case_id not in taken), key=lambda s: s.received_at)
        if not candidates:
            continue
        newest = candidates[-1].received_at
        members = [s for s in candidates if newest - s.received_at <= weights.window]
        if len(members) < weights.cluster.min_cases:
            continue
        first = members[0]
        risk = identify(cluster_risk_id(key, [s.case_id for s in members[:weights.cluster.min_cases]]), members,
                        weights, now, origin="cluster", division_code=first.division_code, actor=None,
                        title=cluster_title(name_of(first.division_code), first.matter or "", len(members)))
        out.identified.append(risk)
        taken.update(s.case_id for s in members)
    return out
