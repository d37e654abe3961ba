"""The control plane's own token check is the gate on every route: each way a token can
be wrong is refused, over HTTP against the running local server."""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path

import boto3
import jwt
import moto
import pytest
import requests
from jwt.algorithms import RSAAlgorithm

MOTO_KEYS = Path(moto.__file__).parent / "cognitoidp" / "resources"


def _moto_private_key():
    """moto signs every pool's tokens with this key; with it a test can mint tokens that are
    correctly signed but wrong in one claim, which is what the verifier must catch."""
    jwk = json.loads(gzip.decompress((MOTO_KEYS / "jwks-private.json.gz").read_bytes()))
    return RSAAlgorithm.from_jwk(json.dumps(jwk["keys"][0] if "keys" in jwk else jwk))


def _public_pem() -> bytes:
    jwk = json.loads(gzip.decompress((MOTO_KEYS / "jwks-public.json.gz").read_bytes()))
    key = RSAAlgorithm.from_jwk(json.dumps(jwk["keys"][0]))
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _claims(stack, user, **over):
    res = stack.resources
    now = int(time.time())
    claims = {"iss": f"https://cognito-idp.us-east-1.amazonaws.com/{res.user_pool_id}", "sub": user.id,
              "client_id": res.app_client_id, "token_use": "access", "iat": now, "auth_time": now,
              "exp": now + 600, "username": user.email}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims, key=None, alg="RS256"):
    return jwt.encode(claims, key or _moto_private_key(), algorithm=alg, headers={"kid": "dummy"})


def _me(stack, token):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{stack.urls['api']}/me", headers=headers, timeout=10)


def test_real_token_is_accepted(stack, owner):
    r = _me(stack, owner.tokens["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == owner.id
    assert r.json()["email"] == owner.email


def test_correctly_signed_token_built_here_is_accepted(stack, owner):
    # Proves the negative cases below fail for the claim they change, not for the signing.
    assert _me(stack, _sign(_claims(stack, owner))).status_code == 200


def test_missing_and_malformed_tokens(stack):
    assert _me(stack, None).status_code == 401
    assert _me(stack, "").status_code == 401
    assert _me(stack, "not-a-jwt").status_code == 401
    r = requests.get(f"{stack.urls['api']}/me", headers={"Authorization": "Basic YTpi"}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


def test_alg_none_is_refused(stack, owner):
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(_claims(stack, owner)).encode()).rstrip(b"=").decode()
    assert _me(stack, f"{header}.{body}.").status_code == 401


def test_hs256_signed_with_the_public_key_is_refused(stack, owner):
    import hmac
    from hashlib import sha256

    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"dummy"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims(stack, owner)).encode()).rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.new(_public_pem(), header + b"." + body, sha256).digest()).rstrip(b"=")
    assert _me(stack, (header + b"." + body + b"." + sig).decode()).status_code == 401


@pytest.mark.parametrize("change", [
    {"exp": int(time.time()) - 3600},                      # expired, beyond the leeway
    {"nbf": int(time.time()) + 3600},                      # not yet valid
    {"token_use": "id"},                                   # an ID token where an access token is expected
    {"client_id": "some-other-app-client"},                # issued to another app client
    {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_otherpool"},  # another pool
    {"exp": None},                                         # no expiry at all
])
def test_wrong_claims_are_refused(stack, owner, change):
    assert _me(stack, _sign(_claims(stack, owner, **change))).status_code == 401


def test_real_id_token_is_refused(stack, owner):
    assert _me(stack, owner.tokens["id_token"]).status_code == 401


def test_token_from_another_app_client_of_the_same_pool_is_refused(stack, owner):
    res = stack.resources
    idp = boto3.client("cognito-idp", endpoint_url=res.endpoint, region_name=res.region)
    other = idp.create_user_pool_client(UserPoolId=res.user_pool_id, ClientName="other",
                                        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    tokens = idp.initiate_auth(ClientId=other["UserPoolClient"]["ClientId"], AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": owner.email, "PASSWORD": owner.password})
    assert _me(stack, tokens["AuthenticationResult"]["AccessToken"]).status_code == 401


def test_token_signed_with_another_key_is_refused(stack, owner):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _me(stack, _sign(_claims(stack, owner), key=key)).status_code == 401


def test_wrong_password_login_is_refused(stack, owner):
    r = requests.post(f"{stack.urls['api']}/auth/login", json={"email": owner.email, "password": "wrong-password"},
                      timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "login_failed"
