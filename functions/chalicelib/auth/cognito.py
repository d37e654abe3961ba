"""Password login against the Cognito user pool (moto locally, Cognito in AWS).

USER_PASSWORD_AUTH is used because moto verifies passwords on that flow (its SRP accepts
any password). The tokens returned are still verified by ``auth.jwt`` on every request.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ..config import settings


class LoginFailed(Exception):
    pass


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("cognito-idp", region_name=settings().region)


def login(email: str, password: str) -> dict[str, Any]:
    try:
        result = _client().initiate_auth(
            ClientId=settings().app_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"}:
            raise LoginFailed("incorrect email or password") from None
        raise
    if "AuthenticationResult" not in result:
        raise LoginFailed(f"additional step required: {result.get('ChallengeName')}")
    tokens = result["AuthenticationResult"]
    return {
        "access_token": tokens["AccessToken"],
        "id_token": tokens["IdToken"],
        "refresh_token": tokens.get("RefreshToken"),
        "expires_in": tokens["ExpiresIn"],
    }


def reset() -> None:
    _client.cache_clear()
