"""Every service accepts only its issuer's unexpired tokens (real services, real broker and database)."""

from __future__ import annotations

import time

import httpx
import pytest

from shared.identity import LocalIssuer
from tests.conftest import ISSUER

pytestmark = pytest.mark.e2e

# A route of each service that an operator (or a mediator, for mediation) may read.
READS = {"intake": ("/v1/cases/00000000-0000-0000-0000-000000000000", "clerk"),
         "router": ("/v1/queues/manual", "operator"),
         "mediation": ("/v1/mediations", "mediator"),
         "audit": ("/v1/cases", "operator")}


def _get(stack, service: str, token: str) -> httpx.Response:
    path, _ = READS[service]
    return httpx.get(f"{stack.url(service)}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.mark.parametrize("service", sorted(READS))
def test_expired_forged_and_foreign_tokens_are_refused_by_every_service(stack, service, tmp_path):
    role = READS[service][1]
    good = ISSUER.mint("who-1", role, ["*"])
    assert _get(stack, service, good).status_code in (200, 404)
    expired = ISSUER.mint("who-1", role, ["*"], ttl_seconds=60, now=time.time() - 3600)
    forger = LocalIssuer(tmp_path / "forger")  # same issuer name, another key, claiming the real key's id
    forger.kid = ISSUER.kid
    forged = forger.mint("who-1", role, ["*"])
    foreign = LocalIssuer(tmp_path / "other", issuer="https://idp.example/realms/other").mint("who-1", role, ["*"])
    for token, why in ((expired, "expired"), (forged, "signature"), (foreign, "")):
        r = _get(stack, service, token)
        assert r.status_code == 401, (service, why, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert why in r.json().get("detail", "").lower()
        assert r.headers["www-authenticate"] == "Bearer"
    assert _get(stack, service, good[:-4] + "AAAA").status_code == 401  # a tampered signature
