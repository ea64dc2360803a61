"""What-if routing: run the router's pure decision over recorded `case.received` events with two
versions of its reference (catalogue, units, triage model) and report every case whose lead unit kind, unit, level or risk colour would
differ, grouped by the rule that made the difference. Deterministic: deadlines run from each case's
received time and nothing else varies, so the same inputs give the same report."""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from services.router import domain
from shared.cloudevents import ContractError, EnvelopeError, decode
from shared.contracts import CaseReceived
from shared.messaging.log import LogRecord

FIELDS = ("category", "unit_kind", "unit_id", "level", "risk_colour")
# The stages of a decision, in order; a difference is blamed on the first stage whose rules differ.
STAGES = (("triage", ("category:", "model:", "hint:")), ("risk", ("risk:",)), ("jurisdiction", ("jurisdiction:", "assist:")))


@dataclass(frozen=True)
class Outcome:
    """One version's decision for a case, reduced to what the report compares."""

    manual: str | None  # the reason, when the case would go to the manual queue
    category: str | None
    unit_kind: str | None
    unit_id: str | None
    level: str | None
    risk_colour: str | None
    rules: tuple[str, ...]

    @classmethod
    def of(cls, decision: domain.Plan | domain.ManualQueue | str) -> "Outcome":
        if isinstance(decision, str):  # refused (an unknown category in this version)
            return cls(decision, None, None, None, None, None, ())
        if isinstance(decision, domain.ManualQueue):
            return cls(decision.reason, None, None, None, None, None, ())
        lead = decision.lead
        return cls(None, decision.category.code, lead.kind.value, lead.id, lead.level.value, decision.risk.value,
                   tuple(decision.rule_ids))

    def value(self, name: str) -> str:
        v = getattr(self, name)
        return v if v is not None else "manual"


@dataclass(frozen=True)
class Change:
    """A case whose decision differs between the versions."""

    case_id: str
    case_number: str
    before: Outcome
    after: Outcome
    fields: tuple[str, ...]
    cause: str


Reference = tuple  # (catalogue, unit directory, triage model or None): one version of what the router decides by


def decide(case: CaseReceived, catalogue: domain.Catalogue, units: domain.UnitDirectory, model=None) -> Outcome:
    """The router's initial decision for a received case (as its handler makes it)."""
    facts = domain.CaseFacts(f"{case.title} {case.description}", case.category, case.location.division_code,
                             case.risk_flags, case.received_at, channel=case.channel.value)
    try:
        return Outcome.of(domain.route(facts, catalogue, units, model))
    except domain.UnknownCategory as exc:
        return Outcome.of(f"refused: {exc}")


def cause_of(before: Outcome, after: Outcome) -> str:
    """The first stage whose rules differ, with the rules each version applied there."""
    if (before.manual is None) != (after.manual is None):
        manual = before.manual or after.manual
        if not any(r.startswith(STAGES[0][1]) for r in before.rules + after.rules):
            return f"manual queue: {manual}"
    for stage, prefixes in STAGES:
        b = sorted(r for r in before.rules if r.startswith(prefixes))
        a = sorted(r for r in after.rules if r.startswith(prefixes))
        if b != a:
            gone, new = [r for r in b if r not in a], [r for r in a if r not in b]
            return f"{stage}: {', '.join(gone) or '-'} → {', '.join(new) or '-'}"
    return f"manual queue: {before.manual or after.manual}"


def received_cases(records: Iterable[LogRecord]) -> tuple[list[CaseReceived], int]:
    """The valid `case.received` events among records, and how many others were skipped."""
    cases, skipped = [], 0
    for rec in records:
        try:
            ev = decode(rec.key, rec.value, rec.headers)
        except EnvelopeError:
            skipped += 1
            continue
        if ev.type != CaseReceived.EVENT_TYPE:
            skipped += 1
            continue
        try:
            cases.append(ev.model())
        except ContractError:
            skipped += 1
    return cases, skipped


def compare(cases: Iterable[CaseReceived], baseline: Reference, candidate: Reference) -> tuple[int, list[Change]]:
    """Decide every case with both versions; (cases seen, changes in case-number order)."""
    seen, changes = 0, []
    for case in cases:
        seen += 1
        before, after = decide(case, *baseline), decide(case, *candidate)
        fields = tuple(f for f in FIELDS if before.value(f) != after.value(f))
        if fields:
            changes.append(Change(str(case.case_id), case.case_number, before, after, fields, cause_of(before, after)))
    changes.sort(key=lambda c: (c.case_number, c.case_id))
    return seen, changes


def groups(changes: list[Change]) -> list[tuple[str, list[Change]]]:
    """Changes grouped by cause, the largest group first (ties by cause)."""
    by: dict[str, list[Change]] = defaultdict(list)
    for c in changes:
        by[c.cause].append(c)
    return sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def to_csv(changes: list[Change]) -> str:
    """One row per changed case: before and after of every compared field, and the cause."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["case_number", "case_id", *(f"{f}_{s}" for f in FIELDS for s in ("before", "after")), "changed",
                "cause"])
    for c in changes:
        w.writerow([c.case_number, c.case_id, *(v for f in FIELDS for v in (c.before.value(f), c.after.value(f))),
                    " ".join(c.fields), c.cause])
    return out.getvalue()


def to_html(seen: int, changes: list[Change], baseline_version: str, candidate_version: str) -> str:
    """A self-contained page: the summary, then each group with its cases."""
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>What-if routing {e(baseline_version)} → "
             f"{e(candidate_version)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
             "td,th{border:1px solid #ccc;padding:2px 6px}</style>",
             f"<h1>What-if routing: {e(baseline_version)} → {e(candidate_version)}</h1>",
             f"<p>{seen} cases decided with both versions; {len(changes)} would change.</p>"]
    for cause, items in groups(changes):
        parts.append(f"<h2>{e(cause)} ({len(items)})</h2><table><tr><th>case</th>"
                     + "".join(f"<th>{f}</th>" for f in FIELDS) + "</tr>")
        for c in items:
            cells = "".join(f"<td>{e(c.before.value(f))} → {e(c.after.value(f))}</td>" if f in c.fields
                            else f"<td>{e(c.before.value(f))}</td>" for f in FIELDS)
            parts.append(f"<tr><td>{e(c.case_number)}</td>{cells}</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"
