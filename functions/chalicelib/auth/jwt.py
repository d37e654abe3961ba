"""Our own verification of Cognito JWTs: the gate on every route, locally and in AWS.

Neither moto's Cognito nor ``chalice local`` enforce tokens, so this module is the only
thing standing between a request and the data. It pins RS256 (no ``none``, no HS256 made
with the public key), takes keys only from the configured JWKS URL, and checks issuer,
``token_use``, ``client_id`` and expiry with a small clock-skew allowance.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import jwt
from jwt import PyJWKClient

LEEWAY_S = 60
# moto routes JWKS requests by an AWS-style Authorization header; real Cognito ignores it.
_JWKS_HEADERS = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=public/20000101/us-east-1/cognito-idp/aws4_request, "
    "SignedHeaders=host, Signature=none"
}


class InvalidToken(Exception):
    """The token must not be trusted; the message is safe to log, not to show."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    groups: frozenset[str] = field(default_factory=frozenset)
    issued_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return "admins" in self.groups


class TokenVerifier:
    def __init__(self, issuer: str, jwks_url: str, client_id: str, cache_s: int = 3600) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=cache_s, headers=_JWKS_HEADERS, timeout=5)
        self._lock = threading.Lock()

    def verify_access_token(self, token: str) -> Principal:
        if not token or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed header: {exc}") from None
        if header.get("alg") != "RS256":
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        try:
            with self._lock:
                key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientError as exc:
            raise InvalidToken(f"no usable signing key: {exc}") from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if claims.get("token_use") != "access":
            raise InvalidToken("not an access token")
        if claims.get("client_id") != self.client_id:
            raise InvalidToken("token was issued to another app client")
        groups = claims.get("cognito:groups") or []
        return Principal(
            user_id=str(claims["sub"]),
            username=str(claims.get("username") or claims["sub"]),
            groups=frozenset(str(g) for g in groups),
            issued_at=float(claims["iat"]),
        )
