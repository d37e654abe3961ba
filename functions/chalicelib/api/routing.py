"""Route declaration: every API route is registered through ``api_route``.

One decorator does what each route would otherwise repeat, so no route can forget it:
it verifies the bearer token (our own JWT check, identical under the test client,
``stellar dev`` and Lambda), parses and validates the JSON body into a pydantic model
(422 with per-field messages), loads a server and checks the route's permission node
(404 when the caller has no access at all, so existence is not leaked; 403 when they lack
the node), and turns ``ApiError`` into the shared JSON error shape. The metadata it
attaches to each view (``ROUTE_META``) is what the OpenAPI document and the route-table
tests read, so the description can never drift from the routes.

The bearer token is a Cognito access token or a user's API key (``stk_…``). A key acts as its
user but only within its scope: a route's node must be among the key's nodes (else 403), a
key bound to one server sees no other (404), and routes that are neither server routes nor
reads (account, keys, password, creating servers, the admin API) refuse keys (403). Every
authenticated request spends from the user's API budget (429 past it), and every response
carries the security headers below, in Lambda as under ``stellar dev``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
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
from ..store.records import REQUEST_ORIGIN, ApiKey, Server
from .security import verifier

log = logging.getLogger(__name__)

PermissionRule = str | Callable[[Any], str]

# On every API response. The API serves JSON only: nothing may load, frame or sniff it, or cache it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=31536000; includeSubDomains"
KEY_TOUCH_EVERY_S = 60  # last-used is written at most this often per key (one write, not one per request)


@dataclass(frozen=True)
class RouteMeta:
    summary: str
    public: bool = False
    admin: bool = False
    permission: PermissionRule | None = None
    permission_doc: str | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    keys: bool = True  # may an API key call it (see the module doc)
    idempotent: bool = False  # honours an Idempotency-Key header (see services.idempotency)


@dataclass
class Context:
    request: Request
    principal: Principal | None
    body: Any = None
    server: Server | None = None
    api_key: ApiKey | None = None  # set when the bearer token was an API key

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

    @property
    def user_agent(self) -> str | None:
        agent = self.request.headers.get("user-agent")
        return agent[:256] if agent else None


ROUTE_META: dict[Callable[..., Any], RouteMeta] = {}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "a bearer token is required",
                       headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def _invalid_token() -> ApiError:
    return ApiError(401, "unauthenticated", "invalid or expired token",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def authenticate_key(token: str, now: float | None = None) -> tuple[Principal, ApiKey]:
    """The key's user (never an admin: keys do not reach the admin API) and the key itself."""
    from ..store import get_store

    now = time.time() if now is None else now
    try:
        prefix, key_hash = ApiKey.split(token)
        key = get_store().authenticate_api_key(prefix, key_hash, now)
    except (ValueError, NotFound):
        raise _invalid_token() from None
    if key.last_used_at is None or key.last_used_at < now - KEY_TOUCH_EVERY_S:
        try:
            for_principal(key.user_id).touch_api_key(key.prefix, now)
        except NotFound:  # revoked between the two reads: refuse it
            raise _invalid_token() from None
    return Principal(user_id=key.user_id, username=f"apikey:{key.prefix}", issued_at=key.created_at), key


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


def effective_permissions(principal: Principal, server: Server, key: ApiKey | None = None) -> frozenset[str]:
    """The nodes the caller holds on ``server``: all for its owner and admins, a subuser's own set,
    narrowed to the key's nodes when the call is made with an API key; NotFound if no access."""
    if principal.is_admin or server.owner_id == principal.user_id:
        held = permissions.ALL
    else:
        sub = for_principal(principal.user_id).get_subuser(server.id, principal.user_id)
        held = frozenset(sub.permissions) & permissions.ALL
    if key is not None:
        if key.server_id is not None and key.server_id != server.id:
            raise NotFound("outside the key's server")
        held &= frozenset(key.permissions)
    return held


def server_for(principal: Principal, server_id: str, permission: str, key: ApiKey | None = None) -> Server:
    """The server if the principal may use ``permission`` on it; 404 if no access at all."""
    if key is not None and key.server_id is not None and key.server_id != server_id:
        raise not_found("server")  # a key bound to one server does not learn whether others exist
    store = for_principal(principal.user_id, principal.is_admin)
    try:
        server = store.get_server(server_id)
        held = effective_permissions(principal, server, key)
    except NotFound:
        raise not_found("server") from None
    if permission not in held:
        raise forbidden(permission)
    return server


def _secure(response: Response, request: Request) -> Response:
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def api_route(bp: Blueprint, path: str, method: str, *, summary: str, public: bool = False,
              admin: bool = False, permission: PermissionRule | None = None,
              permission_doc: str | None = None, body: type[BaseModel] | None = None,
              status: int = 200, keys: bool | None = None,
              idempotent: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view on ``bp``; the view is called as ``view(ctx, **url_params)``.

    ``keys``: whether API keys may call it; by default server routes and non-admin reads only.
    """
    if isinstance(permission, str):
        permissions.require_known(permission)
    if permission is not None and "{server_id}" not in path:
        raise ValueError(f"{path}: a permission node needs a {{server_id}} in the path")
    if keys is None:
        keys = not admin and (permission is not None or method == "GET")
    meta = RouteMeta(summary, public, admin, permission,
                     permission_doc or (permission if isinstance(permission, str) else None), body, status, keys,
                     idempotent)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(**params: str) -> Response:
            request = bp.current_request
            context = request.context or {}
            resource = context.get("resourcePath") or path  # the full path, blueprint prefix included
            # One log context and one trace segment per request; the handling below is unchanged.
            origin = REQUEST_ORIGIN.set({"source_ip": ((context.get("identity") or {}).get("sourceIp")),
                                         "user_agent": (request.headers.get("user-agent") or "")[:256] or None})
            try:
                with logs.request_context(context.get("requestId"), server=params.get("server_id")), \
                        tracing.request(f"{method} {resource}", server=params.get("server_id")):
                    return _secure(handle(request, **params), request)
            finally:
                REQUEST_ORIGIN.reset(origin)

        def handle(request: Request, **params: str) -> Response:
            from ..services import ratelimit

            try:
                principal, key = None, None
                if not public:
                    token = _bearer(request)
                    if token.startswith("stk_"):
                        principal, key = authenticate_key(token)
                    else:
                        principal = authenticate(request)
                if principal is not None:
                    logs.bind(user=principal.user_id)
                    tracing.annotate(user=principal.user_id)
                    ratelimit.spend("api.user", principal.user_id)
                if admin and not (principal and principal.is_admin):
                    raise not_found("resource")
                if key is not None and not meta.keys:
                    raise ApiError(403, "forbidden", "not allowed with an API key; sign in instead")
                ctx = Context(request, principal, api_key=key)
                if body is not None:
                    ctx.body = parse_body(request, body)
                if permission is not None and principal is not None:
                    node = permission if isinstance(permission, str) else permission(ctx.body)
                    ctx.server = server_for(principal, params["server_id"], node, key)
                idem_key = request.headers.get("idempotency-key") if idempotent else None
                if idem_key and principal is not None:
                    from ..services.idempotency import run_once

                    def work() -> tuple[int, Any]:
                        out = fn(ctx, **params)
                        return (out.status_code, json.loads(out.body)) if isinstance(out, Response) else (status, out)

                    code, out = run_once(for_principal(principal.user_id), principal.user_id, idem_key,
                                         f"{method} {path}", request.json_body if body is not None else None, work)
                    return json_response(out, code)
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
