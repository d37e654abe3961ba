"""The permission catalogue for signed-in users: what the subuser editor offers, grouped."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import permissions
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/permissions", "GET", summary="Every server permission node, grouped, with its description")
def catalogue(ctx: Context) -> dict[str, Any]:
    return {"groups": [{"group": group, "permissions": [
        {"key": p.key, "description": p.description, "danger": p.danger} for p in perms]}
        for group, perms in permissions.groups().items()]}
