"""The one refusal every service raises for an act that the state or the input does not allow."""

from __future__ import annotations


class ActionRefused(Exception):
    """An operator's, mediator's or citizen's act refused: 404 (no such thing in your reach),
    409 (not in this state), 422 (the input does not fit). HTTP answers it as RFC 9457 problem details."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
