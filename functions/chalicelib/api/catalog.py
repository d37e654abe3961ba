"""What a user can choose from when creating a server: blueprints and locations."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services.blueprints import catalogue, public_view
from ..store import get_store
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/blueprints", "GET", summary="Blueprints available for new servers")
def list_blueprints(ctx: Context) -> list[dict[str, Any]]:
    return [public_view(b) for b in catalogue().values()]


@api_route(bp, "/locations", "GET", summary="Locations servers can be placed in")
def list_locations(ctx: Context) -> list[dict[str, Any]]:
    return [{"id": loc.id, "name": loc.name} for loc in get_store().list_locations()]
