"""The case lifecycle as a table: which act may happen in which status, and where it leads.

Plain Python, no I/O: the routing desk asks `after(status, act)` before every act, so a refused
transition is refused the same way whether it comes over HTTP (409) or on a department's topic
(a rejection). Acts on one dispatch (urge, supervise, pause, extend) leave the case's status alone
but are allowed only while the case is being handled.
"""

from __future__ import annotations

from enum import StrEnum

from services.router.domain import CaseStatus

S = CaseStatus


class Act(StrEnum):
    """What can happen to a case, in the domain's words."""

    DISPATCH = "dispatch"  # 派单: the router's own or an operator's, from the manual queue or a reassignment
    TO_MANUAL = "to_manual"  # to the command centre's manual queue
    ACCEPT = "accept"  # 签收 by the lead unit
    RESOLVE = "resolve"  # 办结 by the lead unit: on to the callback
    RESOLVE_FOR_REVIEW = "resolve_for_review"  # 办结 of a matter whose resolutions are reviewed (办结审核)
    APPROVE_RESOLUTION = "approve_resolution"
    REJECT_RESOLUTION = "reject_resolution"  # back to the unit for rework
    CALLBACK_SATISFIED = "callback_satisfied"  # 回访: 满意 / 基本满意 closes the case
    CALLBACK_UNSATISFIED = "callback_unsatisfied"  # 不满意: rework (重办), the second time escalated
    CALLBACK_UNREACHABLE = "callback_unreachable"  # 未接通: try again later
    CALLBACK_GIVE_UP = "callback_give_up"  # 未接通 the last allowed time: closed as unreachable
    CLOSE_DIRECTLY = "close_directly"  # 直接办结
    REFUSE = "refuse"  # 不予受理
    MERGE = "merge"  # 并单: into another case
    RETURN = "return"  # 退单 by the lead unit
    TRANSFER = "transfer"  # 转办 by the lead unit
    URGE = "urge"  # 催办
    SUPERVISE = "supervise"  # a 督办单 issued by hand
    PAUSE = "pause"  # clocks stopped, with a reason
    RESUME = "resume"
    REQUEST_EXTENSION = "request_extension"  # 延期申请 by the unit
    DECIDE_EXTENSION = "decide_extension"
    RETURN_FOR_REVIEW = "return_for_review"  # 退单 / 转办 of a matter whose returns are reviewed
    APPROVE_RETURN = "approve_return"  # 退单审核 / 转办审核 approved: dispatched again
    REJECT_RETURN = "reject_return"  # refused: the unit keeps the case
    SPLIT = "split"  # 拆单: one report split into cases for different units
    REOPEN = "reopen"  # 申请重办: the citizen asks through intake (a resolved or recently closed case)


HANDLING = (S.DISPATCHED, S.ACCEPTED)
OPEN = (S.MANUAL, *HANDLING)

# act -> {status it may happen in: status it leads to}
TRANSITIONS: dict[Act, dict[CaseStatus, CaseStatus]] = {
    Act.DISPATCH: {s: S.DISPATCHED for s in OPEN},
    Act.TO_MANUAL: {s: S.MANUAL for s in (*OPEN, S.AWAITING_CALLBACK, S.RESOLUTION_REVIEW, S.RETURN_REVIEW)},
    Act.ACCEPT: {S.DISPATCHED: S.ACCEPTED},
    Act.RESOLVE: {s: S.AWAITING_CALLBACK for s in HANDLING},
    Act.RESOLVE_FOR_REVIEW: {s: S.RESOLUTION_REVIEW for s in HANDLING},
    Act.APPROVE_RESOLUTION: {S.RESOLUTION_REVIEW: S.AWAITING_CALLBACK},
    Act.REJECT_RESOLUTION: {S.RESOLUTION_REVIEW: S.DISPATCHED},
    Act.CALLBACK_SATISFIED: {S.AWAITING_CALLBACK: S.CLOSED},
    Act.CALLBACK_UNSATISFIED: {S.AWAITING_CALLBACK: S.DISPATCHED},
    Act.CALLBACK_UNREACHABLE: {S.AWAITING_CALLBACK: S.AWAITING_CALLBACK},
    Act.CALLBACK_GIVE_UP: {S.AWAITING_CALLBACK: S.CLOSED},
    Act.CLOSE_DIRECTLY: {S.MANUAL: S.CLOSED},
    Act.REFUSE: {S.MANUAL: S.REFUSED},
    Act.MERGE: {s: S.MERGED for s in OPEN},
    Act.RETURN: {s: S.DISPATCHED for s in HANDLING},  # re-routed at once (or then to the manual queue)
    Act.TRANSFER: {s: S.DISPATCHED for s in HANDLING},
    Act.RETURN_FOR_REVIEW: {s: S.RETURN_REVIEW for s in HANDLING},
    Act.APPROVE_RETURN: {S.RETURN_REVIEW: S.DISPATCHED},
    # back to where the dispatch stood (the desk restores dispatched or accepted)
    Act.REJECT_RETURN: {S.RETURN_REVIEW: S.ACCEPTED},
    Act.SPLIT: {S.MANUAL: S.SPLIT},
    Act.REOPEN: {S.AWAITING_CALLBACK: S.DISPATCHED, S.CLOSED: S.DISPATCHED},
    **{act: {s: s for s in HANDLING} for act in (Act.URGE, Act.SUPERVISE, Act.PAUSE, Act.RESUME,
                                                 Act.REQUEST_EXTENSION, Act.DECIDE_EXTENSION)},
}

TERMINAL = frozenset({S.CLOSED, S.REFUSED, S.MERGED, S.SPLIT})


class TransitionRefused(ValueError):
    """An act the case's status does not allow."""

    def __init__(self, status: CaseStatus, act: Act) -> None:
        allowed = ", ".join(s.value for s in TRANSITIONS[act]) or "no status"
        super().__init__(f"{act.value} is not allowed while the case is {status.value} (only when {allowed})")
        self.status, self.act = status, act


def allowed(status: CaseStatus, act: Act) -> bool:
    """Whether the act may happen in this status."""
    return status in TRANSITIONS[act]


def after(status: CaseStatus, act: Act) -> CaseStatus:
    """The status the act leads to; TransitionRefused when the status does not allow it."""
    try:
        return TRANSITIONS[act][status]
    except KeyError:
        raise TransitionRefused(status, act) from None


# Acts that are not the command centre's: the citizen's own request through intake.
CITIZEN_ACTS = frozenset({Act.REOPEN})


def acts_in(status: CaseStatus) -> list[Act]:
    """Every act allowed in a status."""
    return [act for act, moves in TRANSITIONS.items() if status in moves]


def operator_acts_in(status: CaseStatus) -> list[Act]:
    """The acts an operator's screen may offer in a status (the citizen's own are left out)."""
    return [act for act in acts_in(status) if act not in CITIZEN_ACTS]
