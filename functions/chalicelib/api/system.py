"""Health and self-description routes (public)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import messaging
from ..store import get_store
from . import openapi
from .routing import Context, api_route

bp = Blueprint(__name__)


@api_route(bp, "/health", "GET", summary="State of the store, the broker and the nodes", public=True)
def health(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        store = get_store()
        out["store"] = "ok" if store.ping() else "missing"
        nodes = store.list_nodes()
        out["nodes"] = {"total": len(nodes), "online": sum(n.status == "online" for n in nodes)}
    except Exception as exc:  # health must answer whatever is broken
        out["store"] = f"error: {type(exc).__name__}"
        out["nodes"] = {"total": 0, "online": 0}
    try:
        messaging.publisher().ping()
        out["broker"] = "ok"
    except Exception as exc:
        out["broker"] = f"error: {type(exc).__name__}"
    out["status"] = "ok" if out["store"] == "ok" and out["broker"] == "ok" else "degraded"
    return out


@api_route(bp, "/openapi.json", "GET", summary="This API, as an OpenAPI 3.1 document", public=True)
def openapi_document(ctx: Context) -> dict[str, Any]:
    return openapi.build(bp.current_app)
