"""One status vocabulary for a case, and one rule projecting it from the case's events.

Intake (what a submitter is told), audit (what the command centre searches) and the router (what it
answers for a case) all say a case's status in these words, and intake and audit fold it from the
events with `project` — the same function, so they cannot disagree on what an event means. The
router, which decides, maps its own state onto this vocabulary (tested against the same table).

Events reach a reader over several topics, so the rule is tolerant of order where it has to be: a
unit's feedback counts only for the lead dispatch the case is with now (feedback of a dispatch that was
returned, transferred or superseded is history, not status), and once a case is closed, refused or
merged nothing but a reopening moves it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class CaseStatus(StrEnum):
    """Where a case stands, in the domain's words."""

    RECEIVED = "received"  # 受理: intake took it
    COURT_REFERRAL = "court_referral"  # 诉前调解: referred by a court
    ROUTED = "routed"  # the router decided; the dispatch is on its way
    MANUAL_TRIAGE = "manual_triage"  # 人工分拨: in the command centre's manual queue
    DISPATCHED = "dispatched"  # 派单: with a unit, not yet signed for
    ACCEPTED = "accepted"  # 签收
    IN_PROGRESS = "in_progress"  # 办理: progress reported
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请: the unit asked for more time
    RETURN_REVIEW = "return_review"  # 退单审核 / 转办审核: a return or transfer waits for an operator
    RETURNED = "returned"  # 退单: back with the router, to be dispatched again
    TRANSFERRED = "transferred"  # 转办: passed on, to be dispatched again
    RESOLVED = "resolved"  # 办结: the unit finished (awaiting review or the callback)
    REOPENED = "reopened"  # 重办: sent back for rework (callback, review or the citizen)
    CLOSED = "closed"  # 结案
    REFUSED = "refused"  # 不予受理
    MERGED = "merged"  # 并单: follows another case
    SPLIT = "split"  # 拆单: handled as the cases it was split into


# Statuses after which only a reopening (重办) moves the case.
FINISHED = frozenset({CaseStatus.CLOSED, CaseStatus.REFUSED, CaseStatus.MERGED, CaseStatus.SPLIT})
# Statuses in which a unit's later feedback (accept, progress) does not move the case back.
_AFTER_WORK = FINISHED | {CaseStatus.RESOLVED}

_P = "org.onewindow."


@dataclass
class Standing:
    """A case's status with what the rule needs to keep: the lead dispatch and who holds the case."""

    status: CaseStatus = CaseStatus.RECEIVED
    lead_dispatch_id: str | None = None
    holder_unit_id: str | None = None
    holder_since: datetime | None = None

    def _hand_back(self, status: CaseStatus, at: datetime) -> None:
        self.status, self.lead_dispatch_id, self.holder_unit_id, self.holder_since = status, None, None, at

    def _hand_to(self, dispatch_id: str | None, unit_id: str | None, at: datetime) -> None:
        self.status, self.lead_dispatch_id, self.holder_unit_id, self.holder_since = (
            CaseStatus.DISPATCHED, dispatch_id, unit_id, at)


def _lead_assignment(data: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in data.get("assignments") or [] if a.get("role", "lead") == "lead"), None)


def project(s: Standing, event_type: str, data: dict[str, Any], at: datetime) -> Standing:
    """Apply one event to a case's standing (in place, and returned). Events that say nothing of the
    status leave it alone."""
    dispatch_id = data.get("dispatch_id")
    lead = dispatch_id is not None and str(dispatch_id) == s.lead_dispatch_id
    finished = s.status in FINISHED
    match event_type.removeprefix(_P):
        case "court.referral.v1" if s.status is CaseStatus.RECEIVED:
            s.status = CaseStatus.COURT_REFERRAL
        case "case.routed.v1" if not finished:
            a = _lead_assignment(data)
            # the decision and its dispatches travel on different topics: either may come first
            if a and str(a["dispatch_id"]) != s.lead_dispatch_id:
                s._hand_to(str(a["dispatch_id"]), a.get("unit_id"), at)
            elif not a and s.holder_unit_id is None:
                s.status = CaseStatus.ROUTED
        case "case.dispatched.v1" if not finished and data.get("role", "lead") == "lead":
            if str(dispatch_id) != s.lead_dispatch_id:
                s._hand_to(str(dispatch_id), data.get("unit_id"), at)
        case "case.manual_triage_required.v1" if not finished:
            s._hand_back(CaseStatus.MANUAL_TRIAGE, at)
        case "dispatch.accepted.v1" if lead and s.status not in _AFTER_WORK:
            s.status = CaseStatus.ACCEPTED
        case "dispatch.progress.v1" if lead and s.status not in _AFTER_WORK:
            s.status = CaseStatus.IN_PROGRESS
        case "dispatch.extension_requested.v1" if lead and s.status not in _AFTER_WORK:
            s.status = CaseStatus.EXTENSION_REQUESTED
        case "dispatch.extension_decided.v1" if lead and s.status is CaseStatus.EXTENSION_REQUESTED:
            s.status = CaseStatus.IN_PROGRESS
        case "dispatch.return_held.v1" if not finished and s.status not in _AFTER_WORK:
            # the unit's return (on its feedback topic) handed the case back; held, the unit keeps it
            s.status, s.lead_dispatch_id, s.holder_unit_id = (CaseStatus.RETURN_REVIEW, str(dispatch_id),
                                                               data.get("unit_id"))
        case "dispatch.return_reviewed.v1" if lead and not data.get("approved") and not finished:
            s.status = CaseStatus(data.get("status_after") or "accepted")  # refused: the unit keeps it
        case "dispatch.resolved.v1" if lead and not finished:
            s.status = CaseStatus.RESOLVED
        # a held return (退单审核) came first on the router's topic: the review decides, not the return
        case "dispatch.returned.v1" if lead and not finished and s.status is not CaseStatus.RETURN_REVIEW:
            s._hand_back(CaseStatus.RETURNED, at)
        case "dispatch.transferred.v1" if lead and not finished and s.status is not CaseStatus.RETURN_REVIEW:
            s._hand_back(CaseStatus.TRANSFERRED, at)
        case "dispatch.resolution_reviewed.v1" if lead and not data.get("approved") and not finished:
            s.status = CaseStatus.REOPENED  # back to the unit: a new dispatch follows
        case "case.reopened.v1":
            s._hand_back(CaseStatus.REOPENED, at)  # a new dispatch follows
        case "case.closed.v1" | "case.closed_directly.v1":
            s._hand_back(CaseStatus.CLOSED, at)
        case "case.refused.v1":
            s._hand_back(CaseStatus.REFUSED, at)
        case "case.merged.v1":
            s._hand_back(CaseStatus.MERGED, at)
        case "case.split.v1":
            s._hand_back(CaseStatus.SPLIT, at)
    return s


def project_all(events: list[tuple[str, dict[str, Any], datetime]], start: Standing | None = None) -> Standing:
    """A case's standing after its events (type, data, time) in the order given."""
    s = start or Standing()
    for event_type, data, at in events:
        project(s, event_type, data, at)
    return s
