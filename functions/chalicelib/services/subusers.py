"""Subusers: invite an existing account by email, change its nodes, remove it.

Nobody grants what they do not hold: the nodes a change adds or takes away must all be held
by the person making it (owners and admins hold every node; an API key narrows that to its
own nodes). Any change to a subuser, and its removal, ends that user's live console access
at once (``grants.revoke``); they may ask for a new grant, which checks the new nodes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import permissions
from ..errors import ApiError, invalid, not_found
from ..store import Conflict, NotFound, for_principal
from ..store.records import AuditEntry, Server, Subuser
from . import grants

_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$"


def _known(nodes: list[str]) -> list[str]:
    unknown = sorted(set(nodes) - permissions.ALL)
    if unknown:
        raise ValueError(f"unknown permission nodes: {', '.join(unknown)}")
    return sorted(set(nodes))


class InviteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=_EMAIL, max_length=254)
    permissions: list[str] = Field(max_length=len(permissions.ALL) + 8)

    _check = field_validator("permissions")(classmethod(lambda cls, v: _known(v)))


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permissions: list[str] = Field(max_length=len(permissions.ALL) + 8)

    _check = field_validator("permissions")(classmethod(lambda cls, v: _known(v)))


def view(sub: Subuser) -> dict[str, object]:
    return {"user_id": sub.user_id, "email": sub.email, "permissions": sorted(sub.permissions)}


def _may_change(held: frozenset[str], before: set[str], after: set[str]) -> None:
    beyond = sorted((before ^ after) - held)
    if beyond:
        raise ApiError(403, "forbidden", f"you cannot grant or remove permissions you lack: {', '.join(beyond)}",
                       {"permissions": ", ".join(beyond)})


def _audit(actor: str, action: str, server: Server, target_uid: str, **details: str) -> AuditEntry:
    return AuditEntry(actor_id=actor, action=action, server_id=server.id, target=f"user:{target_uid}",
                      details=details)


def invite(actor: str, is_admin: bool, held: frozenset[str], server: Server, body: InviteBody) -> Subuser:
    store = for_principal(actor, is_admin)
    try:
        uid = store.user_id_by_email(body.email)
    except NotFound:
        raise invalid({"email": "no account uses this email; ask them to sign up first"}) from None
    if uid == server.owner_id:
        raise invalid({"email": "this is the server's owner"})
    _may_change(held, set(), set(body.permissions))
    sub = Subuser(server_id=server.id, user_id=uid, permissions=body.permissions, email=body.email.lower())
    try:
        store.put_subuser(sub)
    except Conflict:
        raise ApiError(409, "exists", "this account is already a subuser of the server",
                       {"email": "already a subuser"}) from None
    store.add_audit(_audit(actor, "subuser.create", server, uid, permissions=",".join(body.permissions)))
    return sub


def _get(actor: str, is_admin: bool, server: Server, user_id: str) -> Subuser:
    try:
        return for_principal(actor, is_admin).get_subuser(server.id, user_id)
    except NotFound:
        raise not_found("subuser") from None


def update(actor: str, is_admin: bool, held: frozenset[str], server: Server, user_id: str,
           body: UpdateBody) -> Subuser:
    store = for_principal(actor, is_admin)
    sub = _get(actor, is_admin, server, user_id)
    before = set(sub.permissions)
    _may_change(held, before, set(body.permissions))
    sub.permissions = body.permissions
    store.put_subuser(sub)  # compare-and-set: a concurrent edit is a 409, not a lost update
    grants.revoke(server.id, user_id)
    store.add_audit(_audit(actor, "subuser.update", server, user_id,
                           added=",".join(sorted(set(body.permissions) - before)),
                           removed=",".join(sorted(before - set(body.permissions)))))
    return sub


def remove(actor: str, is_admin: bool, server: Server, user_id: str) -> None:
    store = for_principal(actor, is_admin)
    _get(actor, is_admin, server, user_id)
    try:
        store.delete_subuser(server.id, user_id)
    except NotFound:
        raise not_found("subuser") from None
    grants.revoke(server.id, user_id)
    store.add_audit(_audit(actor, "subuser.delete", server, user_id))
