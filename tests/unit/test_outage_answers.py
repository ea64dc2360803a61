"""What a service answers while PostgreSQL is away or a client has given up (found by the loaded
PostgreSQL drill): no connection to the database is an outage for consumers and a 503 with
Retry-After for HTTP, not a 500 with a traceback; a request whose client left is answered with
nothing logged — under overload a traceback for each made intake slower until it served only
requests whose clients had gone."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect

from shared.db import DatabaseUnavailable, _Acquire
from shared.http import install_problem_handlers
from shared.refusals import Overloaded


class _Failing:
    """An acquisition that fails like asyncpg's when the server's socket is gone or it is starting."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def __aenter__(self):
        raise self.exc

    async def __aexit__(self, *exc_info):
        return False


@pytest.mark.parametrize("cause", [FileNotFoundError(2, "No such file or directory"), ConnectionRefusedError(),
                                   asyncpg.exceptions.CannotConnectNowError("the database system is starting up")])
def test_no_connection_to_the_database_is_an_outage_and_busy(cause):
    async def acquire():
        async with _Acquire(_Failing(cause), 5):
            pass

    with pytest.raises(DatabaseUnavailable) as away:
        asyncio.run(acquire())
    # consumers back off and read the batch again (OSError is in their outages); HTTP answers 503
    assert isinstance(away.value, OSError) and isinstance(away.value, Overloaded)
    assert away.value.__cause__ is cause and away.value.retry_after >= 1


def test_http_answers_503_while_the_database_is_away_and_nothing_to_a_client_that_left(caplog):
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/away")
    async def away() -> None:
        raise DatabaseUnavailable("no connection to the database: FileNotFoundError", title="Database unavailable")

    @app.post("/gone")
    async def gone() -> None:
        raise ClientDisconnect()

    client = TestClient(app, raise_server_exceptions=True)
    with caplog.at_level(logging.INFO):
        r = client.post("/away")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["title"] == "Database unavailable"
        assert client.post("/gone").status_code == 499  # raise_server_exceptions: it did not escape
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info]
