"""Sign-up, sign-in (with two-factor), tokens, password and the signed-in user's profile.

State-changing routes take bearer tokens, never cookies, so CSRF does not apply. Sign-in,
two-factor and password reset are rate limited per account and per source IP
(``services.ratelimit``); a two-factor code is accepted once (no replay within its window).
Account changes are written to the activity log. API keys cannot call any of the changing
routes here (``routing``: non-GET routes without a server node refuse keys).
"""

from __future__ import annotations

import math
import time
from typing import Any

from chalice import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from ..auth import cognito
from ..auth.jwt import Principal
from ..errors import ApiError
from ..services import ratelimit
from ..store import Conflict, NotFound, for_principal
from ..store.records import AuditEntry, User
from .routing import Context, api_route
from .security import verifier

bp = Blueprint(__name__)

_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class SignUpBody(_Body):
    email: str = Field(pattern=_EMAIL, max_length=254)
    password: str = Field(min_length=10, max_length=256)


class ConfirmBody(_Body):
    email: str = Field(pattern=_EMAIL, max_length=254)
    code: str = Field(min_length=1, max_length=16)


class TotpChallengeBody(_Body):
    email: str = Field(min_length=3, max_length=254)
    session: str = Field(min_length=1, max_length=4096)
    code: str = Field(pattern=r"^[0-9]{6}$")


class RefreshBody(_Body):
    refresh_token: str = Field(min_length=1, max_length=8192)


class ForgotBody(_Body):
    email: str = Field(pattern=_EMAIL, max_length=254)


class ResetBody(_Body):
    email: str = Field(pattern=_EMAIL, max_length=254)
    code: str = Field(min_length=1, max_length=16)
    password: str = Field(min_length=10, max_length=256)


class PasswordBody(_Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=10, max_length=256)


class CodeBody(_Body):
    code: str = Field(pattern=r"^[0-9]{6}$")


def _mirror(principal: Principal, email: str) -> None:
    """Keep the profile mirror current: access tokens carry no email, the sign-in does."""
    store = for_principal(principal.user_id)
    try:
        try:
            user = store.get_user(principal.user_id)
            if user.email != email or user.admin != principal.is_admin:
                user.email, user.admin = email, principal.is_admin
                store.put_user(user)
        except NotFound:
            store.put_user(User(id=principal.user_id, email=email, admin=principal.is_admin))
    except Conflict:
        pass  # a concurrent sign-in wrote the same mirror


def _signed_in(tokens: dict[str, Any], email: str) -> dict[str, Any]:
    if "access_token" in tokens:
        _mirror(verifier().verify_access_token(tokens["access_token"]), email.lower())
    return tokens


def _audit(principal: Principal, action: str, **details: str) -> None:
    for_principal(principal.user_id).add_audit(AuditEntry(actor_id=principal.user_id, action=action,
                                                          target=f"user:{principal.user_id}", details=details))


def _charge(subjects: list[tuple[str, str]]) -> None:
    for name, subject in subjects:
        ratelimit.record_failure(name, subject)


@api_route(bp, "/auth/login", "POST", summary="Exchange email and password for tokens (or a 2FA challenge)",
           public=True, body=LoginBody)
def login(ctx: Context) -> dict[str, Any]:
    subjects = ratelimit.auth_guard(ctx.body.email, ctx.source_ip)
    try:
        return _signed_in(cognito.login(ctx.body.email, ctx.body.password), ctx.body.email)
    except cognito.LoginFailed as exc:
        _charge(subjects)
        raise ApiError(401, "login_failed", str(exc)) from None


@api_route(bp, "/auth/login/totp", "POST", summary="Answer the two-factor challenge of a sign-in",
           public=True, body=TotpChallengeBody)
def login_totp(ctx: Context) -> dict[str, Any]:
    subjects = ratelimit.auth_guard(ctx.body.email, ctx.source_ip)
    if not ratelimit.totp_code_fresh(f"login:{ctx.body.email.strip().lower()}", ctx.body.code):
        _charge(subjects)
        raise ApiError(422, "invalid", "this code was used already; wait for the next one",
                       {"code": "already used"})
    try:
        tokens = cognito.answer_totp(ctx.body.email, ctx.body.session, ctx.body.code)
    except ApiError as exc:
        if exc.status in {401, 422}:
            _charge(subjects)
        raise
    return _signed_in(tokens, ctx.body.email)


@api_route(bp, "/auth/refresh", "POST", summary="New access and ID tokens from a refresh token", public=True,
           body=RefreshBody)
def refresh(ctx: Context) -> dict[str, Any]:
    return cognito.refresh(ctx.body.refresh_token)


@api_route(bp, "/auth/signup", "POST", summary="Create an account", public=True, body=SignUpBody, status=201)
def signup(ctx: Context) -> dict[str, Any]:
    confirmed = cognito.sign_up(ctx.body.email, ctx.body.password)
    return {"email": ctx.body.email, "confirmed": confirmed}


@api_route(bp, "/auth/confirm", "POST", summary="Confirm an account with the emailed code", public=True,
           body=ConfirmBody)
def confirm(ctx: Context) -> dict[str, Any]:
    cognito.confirm_sign_up(ctx.body.email, ctx.body.code)
    return {"confirmed": True}


@api_route(bp, "/auth/password/forgot", "POST", summary="Email a password-reset code", public=True,
           body=ForgotBody, status=202)
def forgot(ctx: Context) -> dict[str, Any]:
    ratelimit.reset_guard(ctx.body.email, ctx.source_ip)
    cognito.forgot_password(ctx.body.email)
    return {"sent": True}  # the same answer whether or not the account exists


@api_route(bp, "/auth/password/reset", "POST", summary="Set a new password with the emailed code", public=True,
           body=ResetBody)
def reset(ctx: Context) -> dict[str, Any]:
    ratelimit.reset_guard(ctx.body.email, ctx.source_ip)
    cognito.reset_password(ctx.body.email, ctx.body.code, ctx.body.password)
    return {"reset": True}


@api_route(bp, "/auth/logout", "POST", summary="Sign out everywhere: refresh and access tokens stop working")
def logout(ctx: Context) -> dict[str, Any]:
    cognito.global_sign_out(ctx.token)
    _revoke_tokens(ctx.user)
    _audit(ctx.user, "account.sign_out_everywhere")
    return {"signed_out": True}


def _revoke_tokens(principal: Principal) -> None:
    """Refuse access tokens issued up to now (``iat`` has one-second resolution)."""
    store = for_principal(principal.user_id)
    for _attempt in range(5):
        try:
            user = store.get_user(principal.user_id)
        except NotFound:
            user = User(id=principal.user_id, email=principal.username, admin=principal.is_admin)
        user.tokens_valid_after = float(math.floor(time.time()))
        try:
            store.put_user(user)
            return
        except Conflict:
            continue
    raise ApiError(409, "conflict", "could not sign out, try again")


@api_route(bp, "/me", "GET", summary="The signed-in user")
def me(ctx: Context) -> dict[str, Any]:
    try:
        user = for_principal(ctx.user.user_id).get_user(ctx.user.user_id)
    except NotFound:  # signed in elsewhere (CLI, Cognito directly) before ever logging in here
        user = User(id=ctx.user.user_id, email=ctx.user.username, admin=ctx.user.is_admin)
    return {"id": user.id, "email": user.email, "admin": ctx.user.is_admin}


@api_route(bp, "/me/password", "POST", summary="Change the password", body=PasswordBody)
def change_password(ctx: Context) -> dict[str, Any]:
    cognito.change_password(ctx.token, ctx.body.current_password, ctx.body.new_password)
    _audit(ctx.user, "account.password_change")
    return {"changed": True}


@api_route(bp, "/me/totp/setup", "POST", summary="Start two-factor setup: a secret for an authenticator app")
def totp_setup(ctx: Context) -> dict[str, Any]:
    return cognito.totp_setup(ctx.token, _email_of(ctx))


@api_route(bp, "/me/totp/verify", "POST", summary="Turn two-factor on by proving the app's code", body=CodeBody)
def totp_verify(ctx: Context) -> dict[str, Any]:
    if not ratelimit.totp_code_fresh(f"user:{ctx.user.user_id}", ctx.body.code):
        raise ApiError(422, "invalid", "this code was used already; wait for the next one", {"code": "already used"})
    cognito.totp_enable(ctx.token, ctx.body.code)
    _audit(ctx.user, "account.totp_enable")
    return {"totp": True}


@api_route(bp, "/me/totp", "DELETE", summary="Turn two-factor off")
def totp_disable(ctx: Context) -> dict[str, Any]:
    cognito.totp_disable(ctx.token)
    _audit(ctx.user, "account.totp_disable")
    return {"totp": False}


def _email_of(ctx: Context) -> str:
    try:
        return for_principal(ctx.user.user_id).get_user(ctx.user.user_id).email
    except NotFound:
        return ctx.user.username
