"""HTTP plumbing for the services: RFC 9457 problem details, bearer-token auth per role, health."""

from __future__ import annotations

import logging
from typing import Any, Callable, Collection, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shared.refusals import ActionRefused, Overloaded
from shared.identity import InvalidToken, TokenGrant, TokenVerifier
from shared.settings import Settings

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error answered as RFC 9457 problem details."""

    def __init__(self, status: int, title: str, detail: str | None = None, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **ext: Any):
        super().__init__(title)
        self.status, self.title, self.detail, self.type, self.ext = status, title, detail, type_, ext
        self.headers = headers or {}  # response headers, e.g. Retry-After on a 503

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.ext)
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers={**headers, **self.headers})


def validation_problem(errors: Sequence[dict]) -> Problem:
    """The 422 problem listing every invalid field (FastAPI's error list: loc starts with body, header …)."""
    listed = [
        {
            "pointer": "/" + "/".join(str(p) for p in e["loc"][1:]) if e["loc"][:1] == ("body",) else None,
            "location": str(e["loc"][0]) if e["loc"] else None,
            "field": ".".join(str(p) for p in e["loc"][1:]),
            "detail": e["msg"],
        }
        for e in errors
    ]
    return Problem(
        422,
        "Invalid request",
        f"{len(listed)} invalid field(s)",
        type_="https://onewindow.example/problems/validation",
        errors=listed,
    )


def problem_of(exc: Exception) -> Problem | None:
    """The problem an error is answered with, or None for an unexpected one (a 500, logged)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, Overloaded):
        # a full queue, no database connection in time, too many live feeds: 503 and when to try again
        return Problem(503, exc.title, exc.detail, type_="https://onewindow.example/problems/busy",
                       headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ActionRefused):
        return Problem(exc.status, exc.title, exc.detail)
    if isinstance(exc, RequestValidationError):
        return validation_problem(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        return Problem(exc.status_code, str(exc.detail))
    return None


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details; validation errors list every invalid field."""

    async def _known(request: Request, exc: Exception) -> JSONResponse:
        return problem_of(exc).response(request.url.path)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        """The client left before its request was read (it gave up waiting): no one to answer and
        nothing to log — under overload a traceback for each such request only slows the service more."""
        return Response(status_code=499)

    for kind in (Problem, Overloaded, ActionRefused, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, _known)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return Problem(500, "Internal error", "the error was logged").response(request.url.path)


_bearer = HTTPBearer(auto_error=False)


_verifiers: dict[int, tuple[Settings, TokenVerifier]] = {}


def token_verifier(settings: Settings) -> TokenVerifier:
    """One verifier (and its cache of verified tokens) per settings object; refuses without an issuer."""
    entry = _verifiers.get(id(settings))
    if entry is None or entry[0] is not settings:
        entry = _verifiers[id(settings)] = (settings, TokenVerifier(settings))
    return entry[1]


async def authenticate(verifier: TokenVerifier, authorization: str | None, roles: Collection[str]) -> TokenGrant:
    """The grant of an `Authorization: Bearer <token>` header (read as FastAPI's HTTPBearer reads it)
    whose role is one of `roles`; a 401 or 403 problem otherwise."""
    scheme, token = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and token) or scheme.lower() != "bearer":
        raise Problem(401, "Authentication required", "send Authorization: Bearer <token>")
    return await _grant(verifier, token, roles)


async def _grant(verifier: TokenVerifier, token: str, roles: Collection[str]) -> TokenGrant:
    """The grant of a bearer token (issuer, signature, audience, expiry) with one of `roles`.

    A token verified before is answered from the verifier's cache (until it expires) on the event
    loop; a new one is verified in a worker thread, so that fetching the issuer's keys (rarely, when a
    new key id appears) never blocks the loop.
    """
    grant = verifier.cached(token)
    if grant is None:
        try:
            grant = await run_in_threadpool(verifier.grant, token)
        except InvalidToken as e:
            # the reason (expired, wrong issuer, bad signature) helps an integrator; it reveals no secret
            raise Problem(401, "Invalid token", str(e)) from None
    if grant.role not in roles:
        raise Problem(403, "Forbidden", f"role {grant.role!r} may not do this")
    return grant


def require_roles(settings: Settings, *roles: str) -> Callable[..., TokenGrant]:
    """A dependency that verifies the bearer JWT (see `_grant`) and checks its role; the bearer scheme
    it declares documents the routes' security in OpenAPI."""
    verifier = token_verifier(settings)

    async def dependency(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> TokenGrant:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Problem(401, "Authentication required", "send Authorization: Bearer <token>")
        return await _grant(verifier, credentials.credentials, roles)

    return dependency


def jurisdiction(grant: TokenGrant) -> list[str] | None:
    """The division prefixes a grant may read, for filtering in SQL: None for city-wide grants ("*");
    an empty list (no divisions) reads nothing."""
    return None if "*" in grant.divisions else list(grant.divisions)


def may_act_in(grant: TokenGrant, division_code: str) -> bool:
    """Whether the grant's jurisdiction covers a division (a code covers every code it prefixes)."""
    return any(d == "*" or division_code.startswith(d) for d in grant.divisions)


def _cors_options(settings: Settings) -> dict[str, Any]:
    return dict(allow_origins=list(settings.console_origins), allow_credentials=False,
                allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                expose_headers=["Retry-After", "Location"], max_age=600)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Let the operator console (served by audit, on another origin) call this service: CORS for the
    configured console origins only, bearer tokens in the Authorization header (no cookies)."""
    if not settings.console_origins:
        return
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, **_cors_options(settings))


def with_cors(asgi_app, settings: Settings):
    """An ASGI app answering CORS as `install_cors` makes a service answer (for an app served outside
    FastAPI's middleware stack); the app itself without console origins."""
    if not settings.console_origins:
        return asgi_app
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(asgi_app, **_cors_options(settings))


def add_health(app: FastAPI, ready: Callable[[], bool]) -> None:
    """`/healthz` (process alive) and `/readyz` (dependencies connected)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok = ready()
        return JSONResponse({"status": "ready" if ok else "starting"}, status_code=200 if ok else 503)


class BodyLimit:
    """ASGI middleware refusing request bodies over `max_bytes` early with a 413 problem.

    A declared Content-Length is checked before anything is read; a streamed body is read up to the
    limit (bodies here are small) and handed on only if it fits.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value  # the last one, as before
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                return await self._too_big(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # disconnect: let the app see it
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._too_big(scope, receive, send)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_big(self, scope, receive, send) -> None:
        problem = Problem(413, "Request body too large", f"the limit is {self.max_bytes} bytes")
        await problem.response(scope.get("path"))(scope, receive, send)
