"""Login and the signed-in user's profile."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from ..auth import cognito
from ..errors import ApiError
from ..store import Conflict, NotFound, get_store
from ..store.records import User
from .routing import Context, api_route
from .security import verifier

bp = Blueprint(__name__)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


@api_route(bp, "/auth/login", "POST", summary="Exchange email and password for tokens", public=True,
           body=LoginBody)
def login(ctx: Context) -> dict[str, Any]:
    try:
        tokens = cognito.login(ctx.body.email, ctx.body.password)
    except cognito.LoginFailed as exc:
        raise ApiError(401, "login_failed", str(exc)) from None
    # Keep the profile mirror current: access tokens carry no email, the login does.
    principal = verifier().verify_access_token(tokens["access_token"])
    store = get_store()
    try:
        try:
            user = store.get_user(principal.user_id)
            if user.email != ctx.body.email.lower() or user.admin != principal.is_admin:
                user.email, user.admin = ctx.body.email.lower(), principal.is_admin
                store.put_user(user)
        except NotFound:
            store.put_user(User(id=principal.user_id, email=ctx.body.email.lower(), admin=principal.is_admin))
    except Conflict:
        pass  # a concurrent login wrote the same mirror
    return tokens


@api_route(bp, "/me", "GET", summary="The signed-in user")
def me(ctx: Context) -> dict[str, Any]:
    store = get_store()
    try:
        user = store.get_user(ctx.user.user_id)
    except NotFound:  # signed in elsewhere (CLI, Cognito directly) before ever logging in here
        user = User(id=ctx.user.user_id, email=ctx.user.username, admin=ctx.user.is_admin)
    return {"id": user.id, "email": user.email, "admin": ctx.user.is_admin}
