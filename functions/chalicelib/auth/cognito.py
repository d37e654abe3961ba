"""Account flows against the Cognito user pool (moto locally, Cognito in AWS).

USER_PASSWORD_AUTH is used because moto verifies passwords on that flow (its SRP accepts
any password). Tokens returned are still verified by ``auth.jwt`` on every request. moto
accepts any TOTP code and uses one fixed secret, so locally the two-factor tests prove the
flow, not the cryptography; in AWS the same calls are Cognito's software-token MFA.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import boto3
from botocore.exceptions import ClientError

from ..config import settings
from ..errors import ApiError


class LoginFailed(Exception):
    pass


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("cognito-idp", region_name=settings().region)


_ERRORS: dict[str, tuple[int, str, str | None]] = {
    # Cognito error code → (status, our code, field it concerns)
    "NotAuthorizedException": (401, "not_authorized", None),
    "UserNotFoundException": (401, "not_authorized", None),
    "UserNotConfirmedException": (403, "not_confirmed", None),
    "UsernameExistsException": (409, "exists", "email"),
    "InvalidPasswordException": (422, "invalid", "password"),
    "CodeMismatchException": (422, "invalid", "code"),
    "ExpiredCodeException": (422, "invalid", "code"),
    "EnableSoftwareTokenMFAException": (422, "invalid", "code"),
    "InvalidParameterException": (422, "invalid", None),
    "LimitExceededException": (429, "rate_limited", None),
    "TooManyRequestsException": (429, "rate_limited", None),
    "TooManyFailedAttemptsException": (429, "rate_limited", None),
}


def _call(method: str, **params: Any) -> dict[str, Any]:
    """Call Cognito and turn its errors into API errors with a status and a field."""
    try:
        return dict(getattr(_client(), method)(**params))
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status, code, field = _ERRORS.get(err.get("Code", ""), (502, "identity_provider", None))
        message = err.get("Message") or "identity provider error"
        if status == 401:
            message = "incorrect email, password or token"
        raise ApiError(status, code, message, {field: message} if field else None,
                       {"Retry-After": "60"} if status == 429 else None) from None


def _tokens(result: dict[str, Any]) -> dict[str, Any]:
    tokens = result["AuthenticationResult"]
    out = {"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"], "expires_in": tokens["ExpiresIn"]}
    if tokens.get("RefreshToken"):
        out["refresh_token"] = tokens["RefreshToken"]
    return out


def login(email: str, password: str) -> dict[str, Any]:
    """Tokens, or ``{"challenge": "totp", "session": ...}`` when two-factor is on."""
    try:
        result = _call("initiate_auth", ClientId=settings().app_client_id, AuthFlow="USER_PASSWORD_AUTH",
                       AuthParameters={"USERNAME": email, "PASSWORD": password})
    except ApiError as exc:
        if exc.status == 401:
            raise LoginFailed("incorrect email or password") from None
        raise
    if result.get("ChallengeName") == "SOFTWARE_TOKEN_MFA":
        return {"challenge": "totp", "session": result["Session"]}
    if "AuthenticationResult" not in result:
        raise LoginFailed(f"unsupported sign-in step: {result.get('ChallengeName')}")
    return _tokens(result)


def answer_totp(email: str, session: str, code: str) -> dict[str, Any]:
    result = _call("respond_to_auth_challenge", ClientId=settings().app_client_id,
                   ChallengeName="SOFTWARE_TOKEN_MFA", Session=session,
                   ChallengeResponses={"USERNAME": email, "SOFTWARE_TOKEN_MFA_CODE": code})
    return _tokens(result)


def refresh(refresh_token: str) -> dict[str, Any]:
    result = _call("initiate_auth", ClientId=settings().app_client_id, AuthFlow="REFRESH_TOKEN_AUTH",
                   AuthParameters={"REFRESH_TOKEN": refresh_token})
    return _tokens(result)


def sign_up(email: str, password: str) -> bool:
    """Create an account; returns True when it is usable at once (dev auto-confirm)."""
    _call("sign_up", ClientId=settings().app_client_id, Username=email, Password=password,
          UserAttributes=[{"Name": "email", "Value": email}])
    if os.environ.get("STELLAR_AUTO_CONFIRM") == "1":  # dev only: no mail server to send codes
        _call("admin_confirm_sign_up", UserPoolId=settings().user_pool_id, Username=email)
        return True
    return False


def confirm_sign_up(email: str, code: str) -> None:
    _call("confirm_sign_up", ClientId=settings().app_client_id, Username=email, ConfirmationCode=code)


def forgot_password(email: str) -> None:
    try:
        _call("forgot_password", ClientId=settings().app_client_id, Username=email)
    except ApiError as exc:
        if exc.status != 401:  # never tell whether the account exists
            raise


def reset_password(email: str, code: str, password: str) -> None:
    _call("confirm_forgot_password", ClientId=settings().app_client_id, Username=email,
          ConfirmationCode=code, Password=password)


def change_password(access_token: str, old: str, new: str) -> None:
    try:
        _call("change_password", AccessToken=access_token, PreviousPassword=old, ProposedPassword=new)
    except ApiError as exc:
        if exc.status == 401:  # the token was fine (checked first); the current password was not
            raise ApiError(422, "invalid", "the current password is not correct",
                           {"current_password": "not correct"}) from None
        raise


def global_sign_out(access_token: str) -> None:
    _call("global_sign_out", AccessToken=access_token)


def totp_setup(access_token: str, email: str) -> dict[str, str]:
    secret = _call("associate_software_token", AccessToken=access_token)["SecretCode"]
    label = quote(f"StellarStack:{email}")
    return {"secret": secret, "otpauth_uri": f"otpauth://totp/{label}?secret={secret}&issuer=StellarStack"}


def totp_enable(access_token: str, code: str) -> None:
    result = _call("verify_software_token", AccessToken=access_token, UserCode=code,
                   FriendlyDeviceName="authenticator")
    if result.get("Status") != "SUCCESS":
        raise ApiError(422, "invalid", "the code did not match", {"code": "the code did not match"})
    _call("set_user_mfa_preference", AccessToken=access_token,
          SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True})


def totp_disable(access_token: str) -> None:
    _call("set_user_mfa_preference", AccessToken=access_token,
          SoftwareTokenMfaSettings={"Enabled": False, "PreferredMfa": False})


def reset() -> None:
    _client.cache_clear()
