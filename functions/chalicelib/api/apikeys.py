"""The signed-in user's API keys. Keys cannot call these routes: a key never mints or revokes keys."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import apikeys as service
from ..store import for_principal
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/me/api-keys", "GET", summary="Your API keys (never their secrets)", keys=False)
def list_keys(ctx: Context) -> list[dict[str, Any]]:
    return [service.view(k) for k in for_principal(ctx.user.user_id).list_api_keys(ctx.user.user_id)]


@api_route(bp, "/me/api-keys", "POST", summary="Create an API key; its token is shown in this answer only",
           body=service.CreateKey, status=201, keys=False)
def create_key(ctx: Context) -> dict[str, Any]:
    key, token = service.create(ctx.user, ctx.body)
    return {**service.view(key), "token": token}


@api_route(bp, "/me/api-keys/{key_id}", "DELETE", summary="Revoke an API key", keys=False)
def revoke_key(ctx: Context, key_id: str) -> dict[str, Any]:
    service.revoke(ctx.user, key_id)
    return {"revoked": key_id}
