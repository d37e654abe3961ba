"""Server routes: list, create, read, power, console input, console grant, settings, suspend, delete,
reinstall, startup variables, image, blueprint switch and allocations."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field
from stellar_protocol.messages import BacklogCommand

from ..errors import invalid, json_response, not_found
from ..services import grants
from ..services import servers as service
from ..services.servers import (
    AddAllocationBody,
    CommandBody,
    CreateServer,
    ImageBody,
    PowerBody,
    SettingsBody,
    StartupBody,
    SwitchBlueprintBody,
)
from ..store import BadCursor, NotFound, for_principal, paging
from .routing import Context, api_route

bp = Blueprint(__name__)


MAX_PAGE = 100


@api_route(bp, "/servers", "GET",
           summary="Servers the user owns or is a subuser of; with ?limit=&cursor= one page, the next "
                   "page's cursor in the X-Next-Cursor header")
def list_servers(ctx: Context) -> Response:
    """A JSON array either way, so clients that ignore paging keep working (and get everything)."""
    uid = ctx.user.user_id
    store = for_principal(uid)  # one's own list needs no admin bypass
    params = ctx.request.query_params or {}
    paged = "limit" in params or "cursor" in params
    try:
        limit = int(params.get("limit", "50")) if paged else None
    except ValueError:
        raise invalid({"limit": "an integer from 1 to 100"}) from None
    if limit is not None and not 1 <= limit <= MAX_PAGE:
        raise invalid({"limit": "an integer from 1 to 100"})
    try:  # owned servers, then shared ones, each in id order, behind one cursor
        page = paging.chained(paging.query_tag("servers", uid), [
            lambda n, c: store.list_servers_owned(uid, n, c),
            lambda n, c: store.list_servers_shared(uid, n, c)], limit, params.get("cursor"))
    except BadCursor:
        raise invalid({"cursor": "not a cursor from this list"}) from None
    found = {s.id: s for s in page}  # an owner listed as their own subuser still appears once
    if ctx.api_key is not None and ctx.api_key.server_id is not None:  # a key bound to one server sees only it
        found = {k: v for k, v in found.items() if k == ctx.api_key.server_id}
    servers = list(found.values()) if paged else sorted(found.values(), key=lambda s: s.created_at)
    headers = {"Access-Control-Expose-Headers": "X-Next-Cursor"}
    if page.cursor:
        headers["X-Next-Cursor"] = page.cursor
    return json_response([service.view(s) for s in servers], 200, headers)


@api_route(bp, "/servers", "POST", summary="Create a server from a blueprint", body=CreateServer, status=201,
           idempotent=True)
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
    grants.revoke(server_id)  # every viewer of a deleted server loses its live console at once
    return {"deleted": server_id}


@api_route(bp, "/servers/{server_id}/settings", "POST", summary="Rename the server or change its description",
           body=SettingsBody, permission="settings.rename")
def settings(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(service.update_settings(ctx.user, ctx.server, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}/reinstall", "POST", permission="settings.reinstall", status=202,
           summary="Reinstall: the node stops the server if it runs, re-runs the install script, leaves it offline")
def reinstall(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return {"command_id": service.reinstall(ctx.user, ctx.server, ctx.source_ip)}


@api_route(bp, "/servers/{server_id}/startup", "GET", permission="startup.read",
           summary="Startup: the blueprint, image choices and the visible variables with values and rules")
def get_startup(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.startup_view(ctx.server)


@api_route(bp, "/servers/{server_id}/startup", "PATCH", body=StartupBody, permission="startup.update",
           summary="Change startup variables (checked by the blueprint's rules; applied at the next start)")
def update_startup(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.startup_view(service.update_startup(ctx.user, ctx.server, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}/image", "PATCH", body=ImageBody, permission="startup.docker-image",
           summary="Choose another of the blueprint's images (applied at the next start)")
def set_image(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(service.set_image(ctx.user, ctx.server, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}/blueprint", "POST", body=SwitchBlueprintBody, permission="startup.blueprint",
           status=202, summary="Switch to another blueprint, keeping the server, its ports and files; reinstalls")
def switch_blueprint(ctx: Context, server_id: str) -> dict[str, Any]:
    assert ctx.server is not None
    return service.view(service.switch_blueprint(ctx.user, ctx.server, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}/allocations", "GET", permission="allocation.read",
           summary="The server's ports; the first is the primary")
def list_allocations(ctx: Context, server_id: str) -> list[dict[str, Any]]:
    assert ctx.server is not None
    return service.allocations_view(ctx.server)


@api_route(bp, "/servers/{server_id}/allocations", "POST", body=AddAllocationBody, permission="allocation.create",
           status=201, summary="Add a free port of the server's node (a given one, or any)")
def add_allocation(ctx: Context, server_id: str) -> list[dict[str, Any]]:
    assert ctx.server is not None
    return service.allocations_view(service.add_allocation(ctx.user, ctx.server, ctx.body, ctx.source_ip))


@api_route(bp, "/servers/{server_id}/allocations/{port}", "DELETE", permission="allocation.delete",
           summary="Remove a port that is not the primary one")
def remove_allocation(ctx: Context, server_id: str, port: str) -> list[dict[str, Any]]:
    assert ctx.server is not None
    if not port.isdigit():
        raise not_found("allocation")
    return service.allocations_view(service.remove_allocation(ctx.user, ctx.server, int(port), ctx.source_ip))


class SuspendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server_id: str = Field(min_length=1, max_length=64)
    suspended: bool


@api_route(bp, "/admin/suspensions", "POST", admin=True, body=SuspendBody,
           summary="Suspend a server (it is stopped and power is refused) or lift its suspension")
def suspend(ctx: Context) -> dict[str, Any]:
    try:
        server = for_principal(ctx.user.user_id, True).get_server(ctx.body.server_id)
    except NotFound:
        raise not_found("server") from None
    return service.view(service.set_suspended(ctx.user, server, ctx.body.suspended, ctx.source_ip))
