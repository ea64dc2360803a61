"""Mediation's domain. The skeleton only accepts a dispatch; the lifecycle state machine comes later."""

from __future__ import annotations

from enum import StrEnum

from shared.contracts import CaseDispatched, DispatchAccepted

SOURCE = "/onewindow/mediation"


class MediationStatus(StrEnum):
    """Where a mediation stands."""

    ACCEPTED = "accepted"


def acceptance(dispatch: CaseDispatched) -> DispatchAccepted:
    """The committee signs for the dispatch (签收)."""
    return DispatchAccepted(
        case_id=dispatch.case_id,
        dispatch_id=dispatch.dispatch_id,
        unit_id=dispatch.unit_id,
        note=f"受理调解：{dispatch.unit_name}",
    )
