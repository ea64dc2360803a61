"""Event contracts (pydantic v2, no I/O): the v1 events every service produces or consumes."""

from shared.contracts.events import (
    EVENT_MODELS,
    CaseClosed,
    CaseDispatched,
    CaseReceived,
    CaseRouted,
    Channel,
    DispatchAccepted,
    DispatchResolved,
    Event,
    Location,
    ManualTriageRequired,
    model_for,
)

__all__ = [
    "EVENT_MODELS",
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
