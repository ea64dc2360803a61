"""Limits before any work: a huge body is refused by every service before authentication reads it."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.e2e

ROUTES = {"intake": "/v1/cases", "router": "/v1/cases/00000000-0000-0000-0000-000000000000/callback",
          "mediation": "/v1/mediations/m-1/actions", "audit": "/v1/cases"}


def _post_headers_only(port: int, path: str, length: int, chunked: bool = False) -> bytes:
    """Send a POST's head announcing a body, but none of the body; return what the server answers."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
        if chunked:  # one chunk over the limit, never finished
            s.sendall(f"{length:x}\r\n".encode() + b"x" * min(length, 300_000))
        s.settimeout(10)
        return s.recv(4096)


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_a_100_mb_post_without_a_token_is_refused_before_its_body_is_read(stack, service):
    answer = _post_headers_only(stack.procs[service].port, ROUTES[service], 100 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer


@pytest.mark.parametrize("service", ["router", "audit"])
def test_a_streamed_body_over_the_limit_is_refused_at_the_limit(stack, service):
    answer = _post_headers_only(stack.procs[service].port, ROUTES[service], 200_000, chunked=True)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
