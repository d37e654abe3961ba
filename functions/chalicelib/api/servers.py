"""Server routes: list, create, read, power, console input, console grant, delete."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from stellar_protocol.messages import BacklogCommand

from ..services import grants
from ..services import servers as service
from ..services.servers import CommandBody, CreateServer, PowerBody
from ..store import get_store
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/servers", "GET", summary="Servers the user owns or is a subuser of")
def list_servers(ctx: Context) -> list[dict[str, Any]]:
    store = get_store()
    found = {s.id: s for s in store.list_servers_owned(ctx.user.user_id)}
    found.update({s.id: s for s in store.list_servers_shared(ctx.user.user_id)})
    return [service.view(s) for s in sorted(found.values(), key=lambda s: s.created_at)]


@api_route(bp, "/servers", "POST", summary="Create a server from a blueprint", body=CreateServer, status=201)
def create_server(ctx: Context) -> dict[str, Any]:
    return service.view(service.create(ctx.user, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}", "GET", summary="One server", permission="settings.read")
def get_server(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(ctx.server)


@api_route(bp, "/servers/{server_id}/power", "POST", summary="Start, stop, restart or kill", body=PowerBody,
           permission=lambda body: f"control.{body.action}", permission_doc="control.{action}", status=202)
def power(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return {"command_id": service.power(ctx.user, ctx.server, ctx.body.action, ctx.source_ip)}


@api_route(bp, "/servers/{server_id}/command", "POST", summary="Send a line to the server console",
           body=CommandBody, permission="control.console", status=202)
def command(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return {"command_id": service.console_command(ctx.user, ctx.server, ctx.body.line, ctx.source_ip)}


@api_route(bp, "/servers/{server_id}/console-grant", "POST",
           summary="Short-lived broker credentials to watch this server live", permission="console.read")
def console_grant(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return grants.mint(ctx.user, ctx.server)


@api_route(bp, "/servers/{server_id}/console/backlog", "POST",
           summary="Ask the node to re-send recent console lines", permission="console.history", status=202)
def console_backlog(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return {"command_id": service.send(ctx.server, BacklogCommand(server_id=server_id))}


@api_route(bp, "/servers/{server_id}", "DELETE", summary="Delete the server, its files and its ports",
           permission="settings.delete", status=202)
def delete_server(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    service.delete(ctx.user, ctx.server, ctx.source_ip)
    return {"deleted": server_id}
