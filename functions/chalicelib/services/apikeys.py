"""API keys: minted by a user, shown once, stored as a hash, scoped and revocable.

A key's nodes are a subset of what its user holds: on one server when the key is bound to it
(checked now), and on every server otherwise, where each request is also checked against the
user's own nodes on that server at that moment (``routing.server_for``), so a key never
outgrows its user.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..auth.jwt import Principal
from ..errors import ApiError, invalid, not_found
from ..store import NotFound, for_principal
from ..store.records import ApiKey, AuditEntry
from .subusers import _known

MAX_KEYS = 25
MAX_TTL_DAYS = 365


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    permissions: list[str] = Field(min_length=1, max_length=64)
    server_id: str | None = Field(default=None, min_length=1, max_length=64)
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_TTL_DAYS)

    _check = field_validator("permissions")(classmethod(lambda cls, v: _known(v)))


def view(key: ApiKey) -> dict[str, object]:
    """Never the hash: after creation a key is known by its prefix only."""
    return {"id": key.prefix, "name": key.name, "permissions": sorted(key.permissions), "server_id": key.server_id,
            "created_at": key.created_at, "expires_at": key.expires_at, "last_used_at": key.last_used_at,
            "revoked": key.revoked_at is not None}


def create(principal: Principal, body: CreateKey) -> tuple[ApiKey, str]:
    from ..api.routing import effective_permissions

    store = for_principal(principal.user_id)
    if body.server_id is not None:
        try:
            server = for_principal(principal.user_id, principal.is_admin).get_server(body.server_id)
            held = effective_permissions(principal, server)
        except NotFound:
            raise invalid({"server_id": "no such server"}) from None
        beyond = sorted(set(body.permissions) - held)
        if beyond:
            raise ApiError(403, "forbidden", f"you do not hold {', '.join(beyond)} on this server",
                           {"permissions": ", ".join(beyond)})
    live = [k for k in store.list_api_keys(principal.user_id) if k.revoked_at is None]
    if len(live) >= MAX_KEYS:
        raise ApiError(409, "too_many", f"at most {MAX_KEYS} API keys; revoke one first")
    expires = time.time() + body.expires_in_days * 86_400 if body.expires_in_days else None
    key, token = ApiKey.mint(principal.user_id, body.name, expires, body.permissions, body.server_id)
    store.create_api_key(key)
    store.add_audit(AuditEntry(actor_id=principal.user_id, action="apikey.create", target=f"apikey:{key.prefix}",
                               details={"name": key.name, "permissions": ",".join(key.permissions),
                                        "server": key.server_id or "*"}))
    return key, token


def revoke(principal: Principal, prefix: str) -> None:
    store = for_principal(principal.user_id)
    try:
        store.revoke_api_key(prefix)
    except NotFound:
        raise not_found("API key") from None
    store.add_audit(AuditEntry(actor_id=principal.user_id, action="apikey.revoke", target=f"apikey:{prefix}"))
