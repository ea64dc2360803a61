"""Event contracts (pydantic v2, no I/O): the v1 events every service produces or consumes."""

from shared.contracts.events import (
    EVENT_MODELS,
    AttachmentRef,
    CaseClosed,
    CaseDuplicateReported,
    CaseDispatched,
    CaseReceived,
    CaseRouted,
    Channel,
    Contract,
    DispatchAccepted,
    DispatchResolved,
    Event,
    Location,
    ManualTriageRequired,
    SubmissionRejected,
    model_for,
)

__all__ = [
    "EVENT_MODELS",
    "AttachmentRef",
    "CaseDuplicateReported",
    "Contract",
    "SubmissionRejected",
    "CaseClosed",
    "CaseDispatched",
    "CaseReceived",
    "CaseRouted",
    "Channel",
    "DispatchAccepted",
    "DispatchResolved",
    "Event",
    "Location",
    "ManualTriageRequired",
    "model_for",
]
