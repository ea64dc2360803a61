"""Bearer JWTs: only the configured issuer's, unexpired, for our audience, with a known role."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest

from shared.identity import InvalidToken, LocalIssuer, TokenVerifier, grant_from_claims
from shared.settings import Settings


@pytest.fixture()
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(tmp_path / "issuer")


@pytest.fixture()
def verifier(issuer: LocalIssuer) -> TokenVerifier:
    return TokenVerifier(Settings(auth_issuer=issuer.issuer, auth_jwks_file=issuer.jwks_file))


def test_a_valid_token_gives_its_subject_role_divisions_and_unit(issuer, verifier):
    grant = verifier.grant(issuer.mint("op-7", "operator", ["339901"], unit="cc-339901"))
    assert (grant.subject, grant.role, grant.divisions, grant.unit) == ("op-7", "operator", ["339901"], "cc-339901")


def test_an_expired_token_is_refused(issuer, verifier):
    token = issuer.mint("op-7", "operator", ["*"], ttl_seconds=60, now=time.time() - 3600)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.grant(token)


def test_a_token_signed_by_another_key_is_refused(tmp_path, verifier, issuer):
    forger = LocalIssuer(tmp_path / "forger")  # same issuer name and key id scheme, different key
    with pytest.raises(InvalidToken):
        verifier.grant(forger.mint("op-7", "operator", ["*"]))
    # even when it claims the real key's id
    forged = jwt.encode({"iss": issuer.issuer, "aud": "onewindow", "sub": "x", "iat": int(time.time()),
                         "exp": int(time.time()) + 60, "role": "auditor", "divisions": ["*"]},
                        forger.key, algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="[Ss]ignature"):
        verifier.grant(forged)


def test_an_unsigned_token_is_refused(issuer, verifier):
    unsigned = jwt.encode({"iss": issuer.issuer, "aud": "onewindow", "sub": "x", "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "role": "auditor", "divisions": ["*"]}, None, algorithm="none")
    with pytest.raises(InvalidToken):
        verifier.grant(unsigned)


def test_a_symmetric_token_made_with_the_public_key_is_refused(issuer, verifier):
    # the classic confusion attack: HS256 keyed with the published public key
    public_jwk = issuer.jwks_file.read_bytes()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")  # noqa: E731
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    body = b64(json.dumps({"iss": issuer.issuer, "aud": "onewindow", "sub": "x", "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "role": "auditor", "divisions": ["*"]}).encode())
    signature = b64(hmac.new(public_jwk, head + b"." + body, hashlib.sha256).digest())
    forged = (head + b"." + body + b"." + signature).decode()
    with pytest.raises(InvalidToken):
        verifier.grant(forged)


def test_wrong_issuer_or_audience_is_refused(tmp_path, issuer):
    other = TokenVerifier(Settings(auth_issuer="https://idp.example/realms/other", auth_jwks_file=issuer.jwks_file))
    with pytest.raises(InvalidToken, match="[Ii]ssuer"):
        other.grant(issuer.mint("op-7", "operator", ["*"]))
    audience = TokenVerifier(Settings(auth_issuer=issuer.issuer, auth_audience="another-app",
                                      auth_jwks_file=issuer.jwks_file))
    with pytest.raises(InvalidToken, match="[Aa]udience"):
        audience.grant(issuer.mint("op-7", "operator", ["*"]))


def test_a_token_without_a_known_role_is_refused(issuer, verifier):
    with pytest.raises(InvalidToken, match="role"):
        verifier.grant(issuer.mint("op-7", "superuser", ["*"]))


def test_no_divisions_means_none():
    grant = grant_from_claims({"sub": "x", "exp": 1, "role": "operator"}, Settings())
    assert grant.divisions == []


def test_keycloak_realm_roles_and_a_divisions_attribute():
    s = Settings(auth_role_claim="realm_access.roles", auth_divisions_claim="divisions")
    grant = grant_from_claims({"sub": "u-1", "exp": 1, "realm_access": {"roles": ["offline_access", "auditor"]},
                               "divisions": ["339901"]}, s)
    assert (grant.role, grant.divisions) == ("auditor", ["339901"])


def test_a_rotated_key_in_the_jwks_file_is_picked_up_without_a_restart(tmp_path, issuer, verifier):
    old = issuer.mint("op-7", "operator", ["*"])
    assert verifier.grant(old).subject == "op-7"
    (tmp_path / "issuer" / "issuer-key.pem").unlink()
    time.sleep(0.01)
    rotated = LocalIssuer(tmp_path / "issuer")  # new key, new JWKS file
    assert verifier.grant(rotated.mint("op-8", "operator", ["*"])).subject == "op-8"


def test_a_service_without_an_issuer_refuses_to_start():
    with pytest.raises(ValueError, match="issuer"):
        TokenVerifier(Settings())
