"""The one refusal every service raises for an act that the state or the input does not allow, and
the one answer for "too busy now" (Overloaded)."""

from __future__ import annotations


class ActionRefused(Exception):
    """An operator's, mediator's or citizen's act refused: 404 (no such thing in your reach),
    409 (not in this state), 422 (the input does not fit). HTTP answers it as RFC 9457 problem details."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Overloaded(Exception):
    """Not now: a queue is full or no database connection came in time. HTTP answers it as 503 with
    Retry-After (seconds) so that a client backs off instead of piling on."""

    retry_after = 1

    def __init__(self, detail: str, retry_after: int | None = None, title: str = "Service busy"):
        super().__init__(detail)
        self.detail, self.title = detail, title
        if retry_after is not None:
            self.retry_after = retry_after
