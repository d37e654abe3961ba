"""The activity (audit) log: per server with ``activity.read``, all of it for admins; paged."""

from __future__ import annotations

from collections.abc import Callable

from chalice import Blueprint, Response

from ..errors import invalid, json_response
from ..store import BadCursor, for_principal
from ..store.paging import Page
from ..store.records import AuditEntry
from .routing import Context, api_route

bp = Blueprint(__name__)
MAX_PAGE = 100


def view(entry: AuditEntry) -> dict[str, object]:
    return {"id": entry.id, "ts": entry.ts, "actor_id": entry.actor_id, "action": entry.action,
            "server_id": entry.server_id, "target": entry.target, "source_ip": entry.source_ip,
            "user_agent": entry.user_agent, "details": entry.details}


def _paged(ctx: Context, fetch: Callable[[int, str | None], Page[AuditEntry]]) -> Response:
    """``?limit=&cursor=`` as on GET /servers; the next page's cursor in ``X-Next-Cursor``."""
    params = ctx.request.query_params or {}
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise invalid({"limit": "an integer from 1 to 100"}) from None
    if not 1 <= limit <= MAX_PAGE:
        raise invalid({"limit": "an integer from 1 to 100"})
    try:
        page = fetch(limit, params.get("cursor"))
    except BadCursor:
        raise invalid({"cursor": "not a cursor from this list"}) from None
    headers = {"Access-Control-Expose-Headers": "X-Next-Cursor"}
    if page.cursor:
        headers["X-Next-Cursor"] = page.cursor
    return json_response([view(e) for e in page], 200, headers)


@api_route(bp, "/servers/{server_id}/activity", "GET",
           summary="The server's activity log, newest first; ?limit=&cursor=, next cursor in X-Next-Cursor",
           permission="activity.read")
def server_activity(ctx: Context, server_id: str) -> Response:
    store = for_principal(ctx.user.user_id, ctx.user.is_admin)
    return _paged(ctx, lambda n, c: store.list_audit(server_id, n, c))


@api_route(bp, "/admin/activity", "GET",
           summary="Every activity entry of every server and account, newest first (admins)", admin=True)
def all_activity(ctx: Context) -> Response:
    store = for_principal(ctx.user.user_id, True)
    return _paged(ctx, lambda n, c: store.list_audit_all(n, c))
