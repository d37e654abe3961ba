"""Node enrollment: the one public route a new machine calls, authenticated by its token."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import nodes as service
from ..services.nodes import RegisterBody
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/nodes/register", "POST", public=True, body=RegisterBody,
           summary="Exchange a one-time enrollment token for the node's broker identity and config")
def register(ctx: Context) -> dict[str, Any]:
    return service.register(ctx.body)
