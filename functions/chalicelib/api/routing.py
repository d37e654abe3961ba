"""Route declaration: every API route is registered through ``api_route``.

One decorator does what each route would otherwise repeat, so no route can forget it:
it verifies the bearer token (our own JWT check, identical under the test client,
``stellar dev`` and Lambda), parses and validates the JSON body into a pydantic model
(422 with per-field messages), loads a server and checks the route's permission node
(404 when the caller has no access at all, so existence is not leaked; 403 when they lack
the node), and turns ``ApiError`` into the shared JSON error shape. The metadata it
attaches to each view (``ROUTE_META``) is what the OpenAPI document and the route-table
tests read, so the description can never drift from the routes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from .. import logs, permissions, tracing
from ..auth.jwt import InvalidToken, Principal
from ..errors import ApiError, forbidden, invalid, json_response, not_found
from ..store import Conflict, NotFound, for_principal
from ..store.records import Server
from .security import verifier

log = logging.getLogger(__name__)

PermissionRule = str | Callable[[Any], str]


@dataclass(frozen=True)
class RouteMeta:
    summary: str
    public: bool = False
    admin: bool = False
    permission: PermissionRule | None = None
    permission_doc: str | None = None
    body: type[BaseModel] | None = None
    status: int = 200


@dataclass
class Context:
    request: Request
    principal: Principal | None
    body: Any = None
    server: Server | None = None

    @property
    def user(self) -> Principal:
        assert self.principal is not None
        return self.principal

    @property
    def token(self) -> str:
        """The caller's raw access token (for identity-provider calls made on their behalf)."""
        return _bearer(self.request)

    @property
    def source_ip(self) -> str | None:
        identity = (self.request.context or {}).get("identity") or {}
        return identity.get("sourceIp")


ROUTE_META: dict[Callable[..., Any], RouteMeta] = {}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "a bearer token is required",
                       headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def authenticate(request: Request) -> Principal:
    try:
        principal = verifier().verify_access_token(_bearer(request))
    except InvalidToken as exc:
        log.info("rejected token: %s", exc)
        raise ApiError(401, "unauthenticated", "invalid or expired token",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    # A signature cannot be recalled: sign-out and suspension are enforced by refusing
    # tokens issued before the moment recorded on the user (one key read per request).
    try:
        user = for_principal(principal.user_id).get_user(principal.user_id)
    except NotFound:
        return principal
    if user.tokens_valid_after is not None and principal.issued_at < user.tokens_valid_after:
        raise ApiError(401, "unauthenticated", "this session was signed out",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return principal


def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        raw = request.json_body if request.raw_body else {}
    except Exception:  # chalice raises BadRequestError on malformed JSON
        raise ApiError(400, "bad_json", "request body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = {}
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "body"
            fields.setdefault(key, err["msg"])
        raise invalid(fields) from None


def server_for(principal: Principal, server_id: str, permission: str) -> Server:
    """The server if the principal may use ``permission`` on it; 404 if no access at all."""
    store = for_principal(principal.user_id, principal.is_admin)
    try:
        server = store.get_server(server_id)
    except NotFound:
        raise not_found("server") from None
    if principal.is_admin or server.owner_id == principal.user_id:
        return server
    try:
        sub = store.get_subuser(server_id, principal.user_id)
    except NotFound:
        raise not_found("server") from None
    if permission not in sub.permissions:
        raise forbidden(permission)
    return server


def api_route(bp: Blueprint, path: str, method: str, *, summary: str, public: bool = False,
              admin: bool = False, permission: PermissionRule | None = None,
              permission_doc: str | None = None, body: type[BaseModel] | None = None,
              status: int = 200) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view on ``bp``; the view is called as ``view(ctx, **url_params)``."""
    if isinstance(permission, str):
        permissions.require_known(permission)
    if permission is not None and "{server_id}" not in path:
        raise ValueError(f"{path}: a permission node needs a {{server_id}} in the path")
    meta = RouteMeta(summary, public, admin, permission,
                     permission_doc or (permission if isinstance(permission, str) else None), body, status)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(**params: str) -> Response:
            request = bp.current_request
            context = request.context or {}
            resource = context.get("resourcePath") or path  # the full path, blueprint prefix included
            # One log context and one trace segment per request; the handling below is unchanged.
            with logs.request_context(context.get("requestId"), server=params.get("server_id")), \
                    tracing.request(f"{method} {resource}", server=params.get("server_id")):
                return handle(request, **params)

        def handle(request: Request, **params: str) -> Response:
            try:
                principal = None if public else authenticate(request)
                if principal is not None:
                    logs.bind(user=principal.user_id)
                    tracing.annotate(user=principal.user_id)
                if admin and not (principal and principal.is_admin):
                    raise not_found("resource")
                ctx = Context(request, principal)
                if body is not None:
                    ctx.body = parse_body(request, body)
                if permission is not None and principal is not None:
                    node = permission if isinstance(permission, str) else permission(ctx.body)
                    ctx.server = server_for(principal, params["server_id"], node)
                result = fn(ctx, **params)
            except ApiError as exc:
                return exc.response()
            except Conflict:
                return ApiError(409, "conflict", "the resource changed meanwhile; try again").response()
            except Exception:
                log.exception("unhandled error in %s %s", method, path)
                return ApiError(500, "internal", "internal error").response()
            if isinstance(result, Response):
                return result
            return json_response(result, status)

        ROUTE_META[view] = meta
        bp.route(path, methods=[method])(view)
        return view

    return decorate
