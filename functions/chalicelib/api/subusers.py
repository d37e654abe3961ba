"""Subuser routes and the caller's own effective nodes on a server."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import subusers as service
from ..store import for_principal
from .routing import Context, api_route, effective_permissions

bp = Blueprint(__name__)


def _held(ctx: Context) -> frozenset[str]:
    assert ctx.server is not None
    return effective_permissions(ctx.user, ctx.server, ctx.api_key)


@api_route(bp, "/servers/{server_id}/subusers", "GET", summary="The server's subusers and their nodes",
           permission="user.read")
def list_subusers(ctx: Context, server_id: str) -> list[dict[str, Any]]:
    store = for_principal(ctx.user.user_id, ctx.user.is_admin)
    return [service.view(s) for s in store.list_subusers(server_id)]


@api_route(bp, "/servers/{server_id}/subusers", "POST",
           summary="Invite an existing account by email with some of your own nodes",
           body=service.InviteBody, permission="user.create", status=201)
def invite(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(service.invite(ctx.user.user_id, ctx.user.is_admin, _held(ctx), ctx.server, ctx.body))


@api_route(bp, "/servers/{server_id}/subusers/{user_id}", "PATCH",
           summary="Replace a subuser's nodes (their live console access ends at once)",
           body=service.UpdateBody, permission="user.update")
def update(ctx: Context, server_id: str, user_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(service.update(ctx.user.user_id, ctx.user.is_admin, _held(ctx), ctx.server, user_id,
                                       ctx.body))


@api_route(bp, "/servers/{server_id}/subusers/{user_id}", "DELETE",
           summary="Remove a subuser (their live console access ends at once)", permission="user.delete")
def remove(ctx: Context, server_id: str, user_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    service.remove(ctx.user.user_id, ctx.user.is_admin, ctx.server, user_id)
    return {"removed": user_id}


@api_route(bp, "/servers/{server_id}/permissions", "GET",
           summary="The nodes you hold on this server (the web app hides what is denied)",
           permission="settings.read")
def my_permissions(ctx: Context, server_id: str) -> dict[str, Any]:
    held = _held(ctx)
    assert ctx.server is not None
    return {"owner": ctx.server.owner_id == ctx.user.user_id, "admin": ctx.user.is_admin,
            "permissions": sorted(held)}
