"""Fuzz the intake API from its own OpenAPI document (schemathesis): no input gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import CLERK

pytestmark = pytest.mark.e2e


def test_intake_never_answers_with_a_server_error(stack):
    # Driven by hand: schemathesis' pytest plugin does not run under pytest 9.
    api = schemathesis.openapi.from_url(f"{stack.url('intake')}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/cases", "GET /v1/cases/{case_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case) -> None:
            case.call_and_validate(headers=CLERK, checks=[not_a_server_error])

        no_server_error()
