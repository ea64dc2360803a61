"""The running services are connected to PostgreSQL as their own roles, none as the owner that
migrated their schemas (least privilege; docs/deployment.md)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_every_service_runs_as_its_own_login(stack):
    rows = stack.sql("SELECT DISTINCT application_name, usename FROM pg_stat_activity"
                     " WHERE datname = current_database() AND application_name LIKE 'onewindow-%'")
    logins = {(r["application_name"].removeprefix("onewindow-"), r["usename"]) for r in rows}
    assert logins == {(s, f"onewindow_{s}") for s in ("intake", "router", "mediation", "audit")}
