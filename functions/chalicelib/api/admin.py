"""Admin routes: locations, nodes (with enrollment tokens) and users. Non-admins get 404."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import nodes as node_service
from ..services import users as user_service
from ..services.nodes import LocationBody, LocationPatch, NodeBody, NodeFields
from ..services.users import AdminFlag, CreateUser, DeleteUser
from ..store import get_store
from .routing import Context, api_route

bp = Blueprint(__name__)


# ---- locations ----------------------------------------------------------------------


@api_route(bp, "/admin/locations", "GET", admin=True, summary="Every location with its node count")
def list_locations(ctx: Context) -> list[dict[str, Any]]:
    store = get_store().as_admin(f"admin request by {ctx.user.user_id}", ctx.user.user_id)
    return [{**node_service.location_view(loc), "nodes": len(store.list_nodes(loc.id))}
            for loc in store.list_locations()]


@api_route(bp, "/admin/locations", "POST", admin=True, body=LocationBody, status=201, summary="Create a location")
def create_location(ctx: Context) -> dict[str, Any]:
    return node_service.location_view(node_service.create_location(ctx.body))


@api_route(bp, "/admin/locations/{location_id}", "GET", admin=True, summary="One location")
def get_location(ctx: Context, location_id: str) -> dict[str, Any]:
    return node_service.location_view(node_service.get_location(location_id))


@api_route(bp, "/admin/locations/{location_id}", "PATCH", admin=True, body=LocationPatch,
           summary="Rename a location")
def update_location(ctx: Context, location_id: str) -> dict[str, Any]:
    return node_service.location_view(node_service.rename_location(location_id, ctx.body))


@api_route(bp, "/admin/locations/{location_id}", "DELETE", admin=True,
           summary="Delete an empty location (409 while it has nodes)")
def delete_location(ctx: Context, location_id: str) -> dict[str, Any]:
    node_service.delete_location(location_id)
    return {"deleted": location_id}


# ---- nodes --------------------------------------------------------------------------


@api_route(bp, "/admin/nodes", "GET", admin=True,
           summary="Every node (?location_id= to filter) with online/offline and its last heartbeat")
def list_nodes(ctx: Context) -> list[dict[str, Any]]:
    location = (ctx.request.query_params or {}).get("location_id")
    return [node_service.node_view(n) for n in node_service.list_nodes(location)]


@api_route(bp, "/admin/nodes", "POST", admin=True, body=NodeBody, status=201,
           summary="Create a node: location, addresses, capacity, over-allocation and port ranges")
def create_node(ctx: Context) -> dict[str, Any]:
    return node_service.node_view(node_service.create_node(ctx.body))


@api_route(bp, "/admin/nodes/{node_id}", "GET", admin=True, summary="One node")
def get_node(ctx: Context, node_id: str) -> dict[str, Any]:
    return node_service.node_view(node_service.get_node(node_id))


@api_route(bp, "/admin/nodes/{node_id}", "PATCH", admin=True, body=NodeFields,
           summary="Change a node (ports in use must stay inside its ranges)")
def update_node(ctx: Context, node_id: str) -> dict[str, Any]:
    return node_service.node_view(node_service.update_node(node_id, ctx.body))


@api_route(bp, "/admin/nodes/{node_id}", "DELETE", admin=True,
           summary="Delete a node (409 while it has servers)")
def delete_node(ctx: Context, node_id: str) -> dict[str, Any]:
    node_service.delete_node(node_id)
    return {"deleted": node_id}


@api_route(bp, "/admin/nodes/{node_id}/enrollment", "POST", admin=True, status=201,
           summary="A one-time, expiring enrollment token and the command to run on the new machine")
def enrollment(ctx: Context, node_id: str) -> dict[str, Any]:
    return node_service.issue_enrollment(node_id, node_service.panel_url(dict(ctx.request.headers)))


# ---- users --------------------------------------------------------------------------


@api_route(bp, "/admin/users", "POST", admin=True, body=CreateUser, status=201,
           summary="Create a user (with a password) or invite one (Cognito mails a temporary password)")
def create_user(ctx: Context) -> dict[str, Any]:
    return user_service.view(user_service.create(ctx.user.user_id, ctx.body))


@api_route(bp, "/admin/users/{user_id}", "GET", admin=True, summary="One user")
def get_user(ctx: Context, user_id: str) -> dict[str, Any]:
    return user_service.view(user_service.get(ctx.user.user_id, user_id))


@api_route(bp, "/admin/users/{user_id}/suspend", "POST", admin=True,
           summary="Suspend: sign-in refused and every existing token stops working")
def suspend_user(ctx: Context, user_id: str) -> dict[str, Any]:
    return user_service.view(user_service.suspend(ctx.user.user_id, user_id, True))


@api_route(bp, "/admin/users/{user_id}/unsuspend", "POST", admin=True, summary="Lift a suspension")
def unsuspend_user(ctx: Context, user_id: str) -> dict[str, Any]:
    return user_service.view(user_service.suspend(ctx.user.user_id, user_id, False))


@api_route(bp, "/admin/users/{user_id}/admin", "PUT", admin=True, body=AdminFlag,
           summary="Grant or remove admin rights (the Cognito group 'admins')")
def set_admin(ctx: Context, user_id: str) -> dict[str, Any]:
    return user_service.view(user_service.set_admin(ctx.user.user_id, user_id, ctx.body.admin))


@api_route(bp, "/admin/users/{user_id}", "DELETE", admin=True,
           summary="Delete a user; refused (409) while they own servers unless ?transfer_to=USER_ID")
def delete_user(ctx: Context, user_id: str) -> dict[str, Any]:
    transfer = (ctx.request.query_params or {}).get("transfer_to")
    user_service.delete(ctx.user.user_id, user_id, DeleteUser(transfer_to=transfer))
    return {"deleted": user_id}
