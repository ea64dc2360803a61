"""The router's decisions as plain Python (no broker, no database): triage, risk grading, unit
assignment with joint handling, the per-case lifecycle (accept, return, transfer, resolve,
callback, reopen) and the supervision clocks.

Reference data (matter catalogue, unit directory) is versioned TOML validated at start-up; every
decision names the rules that made it and the catalogue version.
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from shared.contracts import Level, RiskColour, RoutingReason, status
from services.router import deadlines
from services.router.triage import OTHER_KIND, Candidate, Prediction, TriageModel
from shared.topics import UnitKind

REFERENCE = Path(__file__).parent / "reference"
LEVEL_ORDER = [Level.GRID, Level.VILLAGE, Level.TOWN, Level.COUNTY, Level.CITY]
COLOUR_ORDER = [RiskColour.GREEN, RiskColour.YELLOW, RiskColour.RED]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _limit(value):
    return deadlines.Limit.parse(value) if isinstance(value, str) else value


# A time limit in the catalogue: "24 hours", "15 calendar days", "5 working days" (deadlines.py counts them).
TimeLimit = Annotated[deadlines.Limit, BeforeValidator(_limit), PlainSerializer(str, return_type=str)]


class Category(_Frozen):
    """One item of the catalogue (事项): a leaf of domain → matter → item, flattened."""

    code: str  # "<domain>.<matter>.<item>"
    name: str
    path: tuple[str, ...] = ()  # the names of its domain and matter, then its own
    unit_kind: UnitKind
    level: Level
    specialty: str | None = None
    acknowledge_limit: TimeLimit  # 签收: until the unit accepts the dispatch
    resolve_limit: TimeLimit  # 办结: until the unit resolves it
    assist_kinds: tuple[UnitKind, ...] = ()
    mediation_first: bool = False  # 诉前调解: offered mediation before the court takes it
    risk: RiskColour = RiskColour.GREEN  # the least colour a case of this matter gets
    on_red: str = "police_assist"  # a red case of a mediation or petition matter: police lead or assist
    scope: str = ""
    resolution_review: bool = False  # 办结审核: a resolution waits for an operator before the callback
    return_review: bool = False  # 退单审核: a lead unit's return waits for an operator's approval
    transfer_review: bool = False  # 转办审核: a lead unit's transfer waits for an operator's approval


class RiskEffect(_Frozen):
    """What a risk colour does to a dispatch."""

    deadline_factor: Annotated[float, Field(gt=0, le=1)]
    lift_levels: Annotated[int, Field(ge=0, le=3)]
    assist_kinds: tuple[UnitKind, ...] = ()


class RiskRules(_Frozen):
    """How flags, phrases and repeat reports grade a case (三色预警)."""

    red_flags: tuple[str, ...]
    yellow_flags: tuple[str, ...]
    red_phrases: tuple[str, ...]
    yellow_phrases: tuple[str, ...]
    repeats_to_raise: Annotated[int, Field(ge=1)]
    effects: dict[RiskColour, RiskEffect]
    # The police matter that leads a red dispute when the model offers none (a category given by a channel).
    police_lead_category: str = "public_security.violence.armed"


_INHERITED = ("unit_kind", "level", "specialty", "acknowledge_limit", "resolve_limit", "assist_kinds",
              "mediation_first", "risk", "on_red")
_LIMITS = ("acknowledge", "resolve")


def _limits(fields: dict, where: str) -> dict:
    """The fields with their time limits read: `<clock>_limit` text, or an older catalogue's
    `<clock>_hours` number (read as that many hours). A limit that cannot be read names its place."""
    fields = dict(fields)
    for clock in _LIMITS:
        text, hours = fields.pop(f"{clock}_limit", None), fields.pop(f"{clock}_hours", None)
        if text is not None and hours is not None:
            raise ValueError(f"{where}: give {clock}_limit or {clock}_hours, not both")
        if hours is not None:
            if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
                raise ValueError(f"{where}: {clock}_hours must be a number of hours above zero")
            text = f"{hours} hours"
        if text is not None:
            try:
                fields[f"{clock}_limit"] = deadlines.Limit.parse(text)
            except ValueError as exc:
                raise ValueError(f"{where}: {clock}_limit {exc}") from None
    return fields


def _flatten(domains: list[dict]) -> list[dict]:
    """Items of the domain → matter → item tree as flat categories; a matter's fields are its items' defaults."""
    out = []
    for d in domains:
        for m in d.get("matter", []):
            matter = _limits(m, f"{d['code']}.{m['code']}")
            defaults = {k: matter[k] for k in _INHERITED if k in matter}
            for item in m.get("item", []):
                code = f"{d['code']}.{m['code']}.{item['code']}"
                flat = {**defaults, **_limits(item, code), "code": code, "path": (d["name"], m["name"], item["name"])}
                for clock in _LIMITS:
                    if f"{clock}_limit" not in flat:
                        raise ValueError(f"{code}: no {clock}_limit on the item or its matter")
                out.append(flat)
    return out


class Catalogue(_Frozen):
    """The matter catalogue (事项清单), versioned: a tree of domains, matters and items (the categories)."""

    version: str
    max_returns: Annotated[int, Field(ge=0)]
    yellow_share: Annotated[float, Field(gt=0, lt=1)]
    trusted_channels: tuple[str, ...] = ("window", "hotline", "grid", "police_referral", "court_referral")
    callback_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # 回访未接通: calls before closing as unreachable
    reopen_window_days: Annotated[int, Field(ge=0, le=365)] = 15  # 申请重办: how long after closure
    # limits of a matter no item fits, dispatched by an operator with a free-text category
    uncatalogued_acknowledge_limit: TimeLimit = deadlines.Limit(1, deadlines.LimitUnit.WORKING_DAYS)
    uncatalogued_resolve_limit: TimeLimit = deadlines.Limit(5, deadlines.LimitUnit.WORKING_DAYS)  # 一般诉求
    risk: RiskRules
    category: tuple[Category, ...]

    @model_validator(mode="before")
    @classmethod
    def _tree(cls, data):
        if isinstance(data, dict) and "domain" in data:
            data = {k: v for k, v in data.items() if k != "domain"} | {"category": _flatten(data["domain"])}
        return data

    @field_validator("category")
    @classmethod
    def _unique_codes(cls, value: tuple[Category, ...]) -> tuple[Category, ...]:
        codes = [c.code for c in value]
        if len(codes) != len(set(codes)):
            raise ValueError("category codes must be unique")
        for c in value:
            if c.on_red not in ("police_lead", "police_assist"):
                raise ValueError(f"{c.code}: on_red must be police_lead or police_assist")
        return value

    @model_validator(mode="after")
    def _police_lead_is_a_police_item(self) -> "Catalogue":
        lead = self.get(self.risk.police_lead_category)
        if lead is None or lead.unit_kind is not UnitKind.POLICE:
            raise ValueError(f"risk.police_lead_category {self.risk.police_lead_category!r} is not a police item")
        return self

    @cached_property
    def _by_code(self) -> dict[str, Category]:
        return {c.code: c for c in self.category}

    def get(self, code: str) -> Category | None:
        """The category with this code, if catalogued."""
        return self._by_code.get(code)

    @cached_property
    def kinds(self) -> dict[str, str]:
        """Category code → unit kind (what the triage model needs to sum probabilities by kind)."""
        return {c.code: c.unit_kind.value for c in self.category}


class Unit(_Frozen):
    """A unit cases can be dispatched to."""

    id: str
    name: str
    kind: UnitKind
    level: Level
    serves: tuple[Annotated[str, Field(pattern=r"^\d{4,12}$")], ...]
    specialties: tuple[str, ...] = ()

    def serves_division(self, code: str) -> bool:
        """Whether the unit's jurisdiction covers a division."""
        return any(code.startswith(s) for s in self.serves)


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


def check_model(model: TriageModel, catalogue: Catalogue) -> None:
    """Refuse a triage model that can name a category the catalogue does not have, or the wrong kind."""
    from services.router.triage import OUT_OF_SCOPE

    wrong = sorted(c for c in model.classes if catalogue.kinds.get(c) != model.kinds.get(c)
                   and (c, model.kinds.get(c)) != (OUT_OF_SCOPE, OTHER_KIND))
    missing = sorted({c.unit_kind.value for c in catalogue.category} - set(model.kind_classes))
    if missing:
        raise ValueError(f"triage model {model.version} cannot read unit kind(s) {', '.join(missing)}")
    if wrong:
        raise ValueError(f"triage model {model.version} does not fit catalogue {catalogue.version}: "
                         f"{', '.join(wrong[:5])}{' …' if len(wrong) > 5 else ''}")


# ---------------------------------------------------------------- triage and risk

# A phrase right after one of these is denied ("不是打架", "没有拿刀", "没拿刀"). Only these, and only
# right before the phrase: a single 不 or 别 is too common ("别人拿刀", "一言不合拿刀" are not denials).
_NEGATIONS = ("不是", "没有", "并非", "并没", "未曾", "没")


def _phrase_hits(text: str, phrases: Sequence[str], catalogue: Catalogue | None = None) -> set[str]:
    """Phrases present in the text, unless a negation stands just before them (不是打架, 没有拿刀)."""
    hits = set()
    for p in phrases:
        start = text.find(p)
        while start != -1:
            before = text[max(0, start - 3):start]
            if not any(before.endswith(n) for n in _NEGATIONS):
                hits.add(p)
                break
            start = text.find(p, start + 1)
    return hits


@dataclass(frozen=True)
class Triage:
    """Which category a case is, how sure, and what said so."""

    category: Category
    confidence: float  # the calibrated probability of the category's unit kind (the threshold applies to it)
    rule_ids: tuple[str, ...]
    probability: float = 1.0  # of the category itself
    features: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    model_version: str | None = None
    prediction: Prediction | None = None


class UnknownCategory(ValueError):
    """A category code that is not in the catalogue."""


@dataclass(frozen=True)
class ManualQueue:
    """The decision that a person must triage or dispatch the case, with the model's candidates."""

    reason: str
    candidates: tuple[Candidate, ...] = ()
    model_version: str | None = None
    prediction: Prediction | None = None


def triage(text: str, category: str | None, catalogue: Catalogue, model: TriageModel | None,
           channel: str = "window", prediction: Prediction | None = None) -> Triage | ManualQueue:
    """The category: as given by a trusted channel (it must be catalogued), else the model's reading.

    A citizen's own choice of category is a hint recorded beside the model's decision. Below the
    model's calibrated threshold on the unit kind, the case goes to the manual queue with candidates.
    """
    hint = ()
    if category:
        given = catalogue.get(category)
        if channel in catalogue.trusted_channels:
            if given is None:
                raise UnknownCategory(f"category {category!r} is not in catalogue {catalogue.version}")
            return Triage(given, 1.0, (f"category:{given.code}",))
        hint = (f"hint:{category}",)
    if model is None:
        return ManualQueue("no category was given and no triage model is loaded")
    p = prediction or model.predict([text])[0]
    kind = p.kind
    kind_p = p.kind_probabilities[kind]
    if not p.evidence:
        return ManualQueue("triage: no words the model knows", p.candidates, model.version, p)
    if kind == OTHER_KIND:
        return ManualQueue(f"triage: outside the catalogue ({kind_p:.2f}); for another department or a person",
                           p.candidates, model.version, p)
    best = p.best_by_kind.get(kind) or p.best
    cat = catalogue.get(best.category)
    if cat is None:
        return ManualQueue(f"model {model.version} chose {best.category!r}, not in catalogue {catalogue.version}",
                           p.candidates, model.version)
    if kind_p < model.threshold:
        return ManualQueue(f"triage: {kind} at {kind_p:.2f} is below the threshold {model.threshold:.2f}",
                           p.candidates, model.version, p)
    return Triage(cat, round(kind_p, 4), (f"model:{model.version}:{cat.code}", *hint),
                  probability=best.probability, features=p.features, candidates=p.candidates,
                  model_version=model.version, prediction=p)


def grade_risk(flags: list[str], text: str, repeats: int, catalogue: Catalogue,
               floor: RiskColour = RiskColour.GREEN) -> tuple[RiskColour, tuple[str, ...]]:
    """The risk colour and why: flags, alarming phrases (not negated), the matter's own floor, repeats."""
    rules = catalogue.risk
    colour = RiskColour.GREEN
    red = [f for f in flags if f in rules.red_flags]
    red += sorted(_phrase_hits(text, rules.red_phrases, catalogue))
    yellow = [f for f in flags if f in rules.yellow_flags]
    yellow += sorted(_phrase_hits(text, rules.yellow_phrases, catalogue))
    reasons: list[str] = []
    if red:
        colour, reasons = RiskColour.RED, [f"risk:red:{r}" for r in red]
    elif yellow:
        colour, reasons = RiskColour.YELLOW, [f"risk:yellow:{r}" for r in yellow]
    if COLOUR_ORDER.index(floor) > COLOUR_ORDER.index(colour):
        colour, reasons = floor, [*reasons, f"risk:{floor.value}:matter"]
    if repeats >= rules.repeats_to_raise and colour is not RiskColour.RED:
        colour = COLOUR_ORDER[COLOUR_ORDER.index(colour) + 1]
        reasons.append(f"risk:repeats:{repeats}")
    return colour, tuple(reasons)


# ---------------------------------------------------------------- units


def find_unit(
    units: UnitDirectory,
    kind: UnitKind,
    level: Level,
    division_code: str,
    specialty: str | None = None,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> Unit | None:
    """The unit of `kind` serving the division at `level` or, failing that, the nearest level above.

    At a level a unit with the specialty wins over a general one; then the most specific jurisdiction
    (longest served code); then the id, so the choice is deterministic. Excluded units (that returned
    the case) are skipped.
    """
    for lvl in LEVEL_ORDER[LEVEL_ORDER.index(level):]:
        candidates = [
            (specialty is not None and specialty in u.specialties,
             max(len(s) for s in u.serves if division_code.startswith(s)), u.id, u)
            for u in units.unit
            if u.kind == kind and u.level == lvl and u.id not in exclude and u.serves_division(division_code)
            and (not u.specialties or specialty in u.specialties)
        ]
        if candidates:
            candidates.sort(key=lambda c: (not c[0], -c[1], c[2]))
            return candidates[0][3]
    return None


def superior_of(units: UnitDirectory, unit: Unit, division_code: str) -> Unit | None:
    """The unit of the same kind one or more levels above, serving the division (for escalation)."""
    idx = LEVEL_ORDER.index(unit.level)
    if idx + 1 >= len(LEVEL_ORDER):
        return None
    return find_unit(units, unit.kind, LEVEL_ORDER[idx + 1], division_code)


# ---------------------------------------------------------------- plans


@dataclass(frozen=True)
class Assigned:
    """A unit chosen for a dispatch, with its role."""

    unit: Unit
    role: str  # "lead" | "assist"


@dataclass(frozen=True)
class Plan:
    """Who handles a case, by when, and why."""

    category: Category
    confidence: float
    risk: RiskColour
    risk_reasons: tuple[str, ...]
    assignments: tuple[Assigned, ...]
    rule_ids: tuple[str, ...]
    acknowledge_by: datetime
    resolve_by: datetime
    reason: RoutingReason = RoutingReason.INITIAL
    triage: Triage | None = None  # the model's reading, when the model chose the category
    # the limits the deadlines were counted from (the catalogue's, shortened by the risk colour)
    acknowledge_limit: deadlines.Limit | None = None
    resolve_limit: deadlines.Limit | None = None

    def limit_unit(self, clock: str) -> deadlines.LimitUnit:
        """What the acknowledge or resolve clock of this plan counts in."""
        limit = self.acknowledge_limit if clock == "acknowledge" else self.resolve_limit
        return limit.unit if limit else deadlines.LimitUnit.HOURS

    @property
    def lead(self) -> Unit:
        """The lead unit (主办)."""
        return self.assignments[0].unit


def plan_for(
    category: Category,
    risk: RiskColour,
    division_code: str,
    catalogue: Catalogue,
    units: UnitDirectory,
    now: datetime,
    *,
    confidence: float = 1.0,
    risk_reasons: tuple[str, ...] = (),
    rule_ids: tuple[str, ...] = (),
    exclude: frozenset[str] = frozenset(),
    lead: Unit | None = None,
    reason: RoutingReason = RoutingReason.INITIAL,
    extra_assist: tuple[Category, ...] = (),
) -> Plan | ManualQueue:
    """Assign lead and assisting units for a category at its level (lifted by risk) and set deadlines.

    `extra_assist` are matters whose units assist the lead (a red dispute led by the police keeps its
    mediation committee beside it)."""
    effect = catalogue.risk.effects.get(risk)
    level = category.level
    if effect and effect.lift_levels:
        level = LEVEL_ORDER[min(LEVEL_ORDER.index(level) + effect.lift_levels, len(LEVEL_ORDER) - 1)]
    if lead is None:
        lead = find_unit(units, category.unit_kind, level, division_code, category.specialty, exclude)
    if lead is None:
        return ManualQueue(f"no {category.unit_kind.value} unit serves division {division_code}")
    assignments = [Assigned(lead, "lead")]
    assist_kinds = list(category.assist_kinds) + list(effect.assist_kinds if effect else ())
    for kind in dict.fromkeys(assist_kinds):
        if kind == lead.kind:
            continue
        helper = find_unit(units, kind, Level.TOWN if kind is UnitKind.POLICE else category.level, division_code)
        if helper:
            assignments.append(Assigned(helper, "assist"))
    for other in extra_assist:
        if other.unit_kind in {a.unit.kind for a in assignments}:
            continue
        helper = find_unit(units, other.unit_kind, other.level, division_code, other.specialty)
        if helper:
            assignments.append(Assigned(helper, "assist"))
    factor = effect.deadline_factor if effect else 1.0
    acknowledge = category.acknowledge_limit.scaled(factor)
    resolve = category.resolve_limit.scaled(factor)
    rules = (*rule_ids, *risk_reasons, *(f"assist:{a.unit.kind.value}:{a.unit.id}" for a in assignments[1:]),
             f"jurisdiction:{lead.level.value}:{lead.id}")
    return Plan(
        category=category,
        confidence=confidence,
        risk=risk,
        risk_reasons=risk_reasons,
        assignments=tuple(assignments),
        rule_ids=rules,
        acknowledge_by=acknowledge.due(now),
        resolve_by=resolve.due(now),
        reason=reason,
        acknowledge_limit=acknowledge,
        resolve_limit=resolve,
    )


@dataclass(frozen=True)
class CaseFacts:
    """What the router knows of a new case (from case.received)."""

    text: str
    category: str | None
    division_code: str
    risk_flags: list[str]
    received_at: datetime
    repeats: int = 0
    channel: str = "window"


def police_item(p: Prediction | None, catalogue: Catalogue) -> Category:
    """The police item that leads a red case: the model's most probable police item, else the
    catalogue's `police_lead_category` (validated to be a police item)."""
    police = p.best_by_kind.get("police") if p else None
    return catalogue.get(police.category if police else catalogue.risk.police_lead_category)


def red_without_police(plan: Plan) -> bool:
    """A red plan with no police unit in it: never dispatched as is."""
    return plan.risk is RiskColour.RED and all(a.unit.kind is not UnitKind.POLICE for a in plan.assignments)


def route(case: CaseFacts, catalogue: Catalogue, units: UnitDirectory, model: TriageModel | None,
          prediction: Prediction | None = None) -> Plan | ManualQueue:
    """Decide who handles a new case. Deterministic: deadlines run from the received time.

    Safety wraps the model: a red case of a mediation or petition matter never goes there alone —
    police lead (the dispute's unit assists) or assist, as the matter says in the catalogue.
    Raises UnknownCategory for a category code a trusted channel gave that the catalogue does not have.
    """
    t = triage(case.text, case.category, catalogue, model, case.channel, prediction)
    if isinstance(t, ManualQueue):
        colour, reasons = grade_risk(case.risk_flags, case.text, case.repeats, catalogue)
        p = t.prediction
        if colour is RiskColour.RED and p is not None and p.kind == OTHER_KIND:
            # a dangerous report for another department (a gas leak) waits for a person, flagged
            return replace(t, reason=f"red ({', '.join(reasons)}); {t.reason}")
        if colour is not RiskColour.RED or p is None:
            return t
        # Unsure of the matter but the report is dangerous: the police go now, not after a queue.
        lead_cat = police_item(p, catalogue)
        # the dispute's own unit assists only when the model read that kind first
        other = catalogue.get(p.best_by_kind[p.kind].category) if p.kind in p.best_by_kind else None
        t = Triage(lead_cat, p.kind_probabilities.get("police", 0.0),
                   (f"model:{t.model_version}:{lead_cat.code}", "risk:red:unsure_triage_to_police"),
                   probability=p.best_by_kind["police"].probability if "police" in p.best_by_kind else 0.0,
                   features=p.features, candidates=p.candidates, model_version=t.model_version, prediction=p)
        plan = plan_for(lead_cat, colour, case.division_code, catalogue, units, case.received_at,
                        confidence=t.confidence, risk_reasons=reasons, rule_ids=t.rule_ids,
                        extra_assist=(other,) if other and other.unit_kind is not UnitKind.POLICE else ())
        return replace(plan, triage=t) if isinstance(plan, Plan) else plan
    colour, reasons = grade_risk(case.risk_flags, case.text, case.repeats, catalogue, t.category.risk)
    category, extra, rules = t.category, (), t.rule_ids
    if colour is RiskColour.RED and category.unit_kind in (UnitKind.MEDIATION, UnitKind.PETITION):
        if category.on_red == "police_lead":
            lead_cat = police_item(t.prediction, catalogue)
            category, extra = lead_cat, (t.category,)
            rules = (*rules, f"risk:red:police_lead:{lead_cat.code}")
    plan = plan_for(category, colour, case.division_code, catalogue, units, case.received_at,
                    confidence=t.confidence, risk_reasons=reasons, rule_ids=rules, extra_assist=extra)
    if isinstance(plan, Plan) and red_without_police(plan):
        return ManualQueue(f"red case and no police unit serves division {case.division_code}",
                           t.candidates, t.model_version)
    if isinstance(plan, Plan) and t.model_version:
        plan = replace(plan, triage=t)
    return plan


UNCATALOGUED = "uncatalogued"


def uncatalogued(catalogue: Catalogue, unit: Unit, name: str) -> Category:
    """A matter no catalogue item fits (a broken street lamp), named in free text by the operator who
    dispatches it: the chosen unit's kind and level, the catalogue's general limits."""
    return Category(code=UNCATALOGUED, name=name, path=(name,), unit_kind=unit.kind, level=unit.level,
                    acknowledge_limit=catalogue.uncatalogued_acknowledge_limit,
                    resolve_limit=catalogue.uncatalogued_resolve_limit)


# ---------------------------------------------------------------- the case lifecycle


class CaseStatus(StrEnum):
    """Where a case stands in the router's eyes."""

    MANUAL = "manual_triage"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RESOLUTION_REVIEW = "resolution_review"  # 办结审核: the resolution waits for an operator
    AWAITING_CALLBACK = "awaiting_callback"
    CLOSED = "closed"
    REFUSED = "refused"  # 不予受理
    MERGED = "merged"  # 并单: follows another case
    RETURN_REVIEW = "return_review"  # 退单审核 / 转办审核: the lead unit's return or transfer waits for an operator
    SPLIT = "split"  # 拆单: handled as the cases it was split into


class DispatchStatus(StrEnum):
    """Where one dispatch stands."""

    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    ENDED = "ended"  # returned, transferred, or superseded


class FeedbackRefused(ValueError):
    """Feedback that does not fit the case: unknown dispatch, another unit, an ended dispatch."""


@dataclass
class DispatchRecord:
    """One dispatch of a case to one unit."""

    dispatch_id: str
    unit_id: str
    unit_kind: str
    level: str
    role: str
    status: DispatchStatus = DispatchStatus.DISPATCHED
    # 延期申请 waiting for an operator: the due time asked for (ISO 8601) and why
    extension_due: str | None = None
    extension_reason: str | None = None
    progressed: bool = False  # the unit reported progress (or asked for time): 办理中
    # a return or transfer waiting for 退单审核 / 转办审核: {"kind", "reason", "target_unit_id", "status"}
    held_return: dict | None = None

    @property
    def open(self) -> bool:
        return self.status in (DispatchStatus.DISPATCHED, DispatchStatus.ACCEPTED)


@dataclass
class RoutingState:
    """The router's state of one case."""

    case_id: str
    case_number: str
    status: CaseStatus
    catalogue_version: str
    decided_at: datetime
    division_code: str = ""
    category: str | None = None
    risk: RiskColour = RiskColour.GREEN
    rule_ids: tuple[str, ...] = ()
    dispatches: list[DispatchRecord] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    returns: int = 0
    reopened: int = 0
    repeats: int = 0
    facts: dict = field(default_factory=dict)  # title, description, location: every dispatch carries them
    traceparent: str | None = None  # the case's trace, continued by operator actions

    # -- views
    @property
    def lead(self) -> DispatchRecord | None:
        """The current lead dispatch."""
        return next((d for d in reversed(self.dispatches) if d.role == "lead" and d.status != DispatchStatus.ENDED),
                    None)

    def dispatch(self, dispatch_id: str, unit_id: str) -> DispatchRecord:
        """The dispatch feedback is about; refused unless it is this case's, to that unit, and open."""
        d = next((d for d in self.dispatches if d.dispatch_id == dispatch_id), None)
        if d is None or d.unit_id != unit_id:
            raise FeedbackRefused("feedback does not match a dispatch of this case to that unit")
        return d

    # -- transitions
    def apply_plan(self, plan: Plan, dispatch_ids: list[str]) -> None:
        """Record the dispatches of a plan (previous open dispatches end)."""
        for d in self.dispatches:
            if d.open:
                d.status = DispatchStatus.ENDED
        self.category = plan.category.code
        self.risk = plan.risk
        self.rule_ids = plan.rule_ids
        self.status = CaseStatus.DISPATCHED
        for a, did in zip(plan.assignments, dispatch_ids):
            self.dispatches.append(DispatchRecord(did, a.unit.id, a.unit.kind.value, a.unit.level.value, a.role))

    def accept(self, dispatch_id: str, unit_id: str) -> bool:
        """签收. Returns whether anything changed (a repeated or late accept changes nothing)."""
        d = self.dispatch(dispatch_id, unit_id)
        if d.status is DispatchStatus.DISPATCHED:
            d.status = DispatchStatus.ACCEPTED
            if d.role == "lead" and self.status is CaseStatus.DISPATCHED:
                self.status = CaseStatus.ACCEPTED
            return True
        return False

    def resolve(self, dispatch_id: str, unit_id: str, review: bool = False) -> bool:
        """办结. The lead's resolution moves the case to the satisfaction callback (回访), or first to an
        operator's review (办结审核) when its matter asks for one."""
        d = self.dispatch(dispatch_id, unit_id)
        if not d.open:
            return False
        d.status = DispatchStatus.RESOLVED
        d.extension_due = d.extension_reason = None
        if d.role == "lead" and self.status in (CaseStatus.DISPATCHED, CaseStatus.ACCEPTED):
            self.status = CaseStatus.RESOLUTION_REVIEW if review else CaseStatus.AWAITING_CALLBACK
        return True

    def end_dispatch(self, dispatch_id: str, unit_id: str) -> DispatchRecord | None:
        """A return or transfer ends the dispatch; returns it if it was open (else None: late, ignored)."""
        d = self.dispatch(dispatch_id, unit_id)
        if not d.open:
            return None
        d.status = DispatchStatus.ENDED
        return d

    def to_manual(self) -> None:
        """Put the case in the manual queue (open dispatches end)."""
        for d in self.dispatches:
            if d.open:
                d.status = DispatchStatus.ENDED
        self.status = CaseStatus.MANUAL

    def close(self, status: CaseStatus = CaseStatus.CLOSED) -> None:
        """结案 (or 不予受理, 并单: the other ends of a case): open dispatches end."""
        for d in self.dispatches:
            if d.open:
                d.status = DispatchStatus.ENDED
        self.status = status


def new_dispatch_ids(seed: str, plan: Plan) -> list[str]:
    """Deterministic dispatch ids: the same input (seed) always yields the same ids."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"onewindow:dispatch:{seed}:{i}:{a.unit.id}"))
            for i, a in enumerate(plan.assignments)]


# ---------------------------------------------------------------- supervision clocks


class ClockColour(StrEnum):
    """督办 colours of a deadline clock."""

    WHITE = "white"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class Clock:
    """A deadline clock of one dispatch: acknowledge (签收) or resolve (办结).

    It counts in the unit of its limit: a working-day clock counts only the time of working days, so
    its yellow share, a pause and an extension are measured in working time (deadlines.py)."""

    dispatch_id: str
    kind: str  # "acknowledge" | "resolve"
    started_at: datetime
    due_at: datetime
    colour: ClockColour = ClockColour.WHITE
    paused_at: datetime | None = None
    limit_unit: deadlines.LimitUnit = deadlines.LimitUnit.HOURS  # what the clock counts in

    def yellow_at(self, yellow_share: float) -> datetime:
        """When the clock has used `yellow_share` of its time, counted in its unit."""
        total = deadlines.elapsed(self.limit_unit, self.started_at, self.due_at)
        return deadlines.advance(self.limit_unit, self.started_at, total * yellow_share)

    def colour_at(self, now: datetime, yellow_share: float) -> ClockColour:
        """The colour the clock should show at `now` (a paused clock keeps its colour)."""
        if self.paused_at is not None:
            return self.colour
        if now >= self.due_at:
            return ClockColour.RED
        if now >= self.yellow_at(yellow_share):
            return ClockColour.YELLOW
        return ClockColour.WHITE

    def next_change(self, yellow_share: float) -> datetime | None:
        """When the clock next changes colour (None when paused or already red)."""
        if self.paused_at is not None or self.colour is ClockColour.RED:
            return None
        if self.colour is ClockColour.WHITE:
            return self.yellow_at(yellow_share)
        return self.due_at

    def pause(self, now: datetime) -> "Clock":
        """Stop the clock (with a reason recorded by the caller)."""
        return self if self.paused_at else replace(self, paused_at=now)

    def resume(self, now: datetime) -> "Clock":
        """Restart the clock: its start and due time move by the time spent paused, counted in the
        clock's unit (a working-day clock paused over a weekend moves by none of the weekend)."""
        if self.paused_at is None:
            return self
        shift = deadlines.elapsed(self.limit_unit, self.paused_at, now)
        return replace(self, paused_at=None, started_at=deadlines.advance(self.limit_unit, self.started_at, shift),
                       due_at=deadlines.advance(self.limit_unit, self.due_at, shift))

    def extend(self, by: deadlines.Limit) -> "Clock":
        """Extend the limit (延期): the due time moves on by `by`, counted in its own unit from the
        current due time (5 working days after a due time at the end of a Friday end the next Friday)."""
        return replace(self, due_at=deadlines.advance(by.unit, self.due_at, by.span))


@dataclass(frozen=True)
class RunningClock:
    """A running clock as supervision finds it: with the case, unit and division it belongs to."""

    clock: Clock
    case_id: uuid.UUID
    unit_id: str
    unit_kind: str
    division_code: str
    traceparent: str | None = None


@dataclass(frozen=True)
class ClockChange:
    """A clock as it is to be saved: its new state, when it next changes colour, why it is paused."""

    clock: Clock
    next_check: datetime | None
    pause_reason: str | None = None


def shared_status(state: RoutingState) -> "status.CaseStatus":
    """The router's state in the shared vocabulary (shared.contracts.status), as intake and audit
    project it from the events: what the citizen and the command centre are told."""
    S = status.CaseStatus
    lead = state.lead
    match state.status:
        case CaseStatus.MANUAL:
            return S.MANUAL_TRIAGE
        case CaseStatus.DISPATCHED if lead is not None and lead.status is DispatchStatus.ACCEPTED:
            return S.IN_PROGRESS if lead.progressed else S.ACCEPTED
        case CaseStatus.DISPATCHED:
            return S.DISPATCHED
        case CaseStatus.ACCEPTED if lead is not None and lead.extension_due is not None:
            return S.EXTENSION_REQUESTED
        case CaseStatus.ACCEPTED:
            return S.IN_PROGRESS if lead is not None and lead.progressed else S.ACCEPTED
        case CaseStatus.RESOLUTION_REVIEW | CaseStatus.AWAITING_CALLBACK:
            return S.RESOLVED
    return S(state.status.value)  # return_review, closed, refused, merged, split: the same words
