"""User administration: create or invite, suspend, delete (with server transfer), make admin.

Cognito holds identities and the ``admins`` group; the store holds the profile. Suspension
acts on both sides because a signed JWT cannot be recalled: Cognito refuses new sign-ins
(disabled) and the API refuses every token issued before the suspension
(``User.tokens_valid_after``, checked by ``api.routing.authenticate``).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..auth import cognito
from ..config import settings
from ..errors import ApiError, invalid, not_found
from ..store import Conflict, NotFound, Store, get_store
from ..store.records import AuditEntry, Server, User

ADMINS_GROUP = "admins"
_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}$"


class CreateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=_EMAIL, max_length=254)
    # With a password the account is ready at once; without, Cognito mails an invitation.
    password: str | None = Field(default=None, min_length=8, max_length=256)
    admin: bool = False


class DeleteUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfer_to: str | None = Field(default=None, max_length=64)


class AdminFlag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    admin: bool


def _store(actor: str) -> Store:
    return get_store().as_admin(f"admin user management by {actor}", actor)


def view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "admin": user.admin, "suspended": user.suspended,
            "created_at": user.created_at}


def _pool() -> str:
    return settings().user_pool_id


def get(actor: str, user_id: str) -> User:
    try:
        return _store(actor).get_user(user_id)
    except NotFound:
        raise not_found("user") from None


def create(actor: str, body: CreateUser) -> User:
    params: dict[str, Any] = {
        "UserPoolId": _pool(), "Username": body.email,
        "UserAttributes": [{"Name": "email", "Value": body.email}, {"Name": "email_verified", "Value": "true"}],
    }
    if body.password:
        params["MessageAction"] = "SUPPRESS"
    result = cognito._call("admin_create_user", **params)
    sub = next(a["Value"] for a in result["User"]["Attributes"] if a["Name"] == "sub")
    if body.password:
        cognito._call("admin_set_user_password", UserPoolId=_pool(), Username=body.email, Password=body.password,
                      Permanent=True)
    if body.admin:
        cognito._call("admin_add_user_to_group", UserPoolId=_pool(), Username=body.email, GroupName=ADMINS_GROUP)
    user = User(id=sub, email=body.email, admin=body.admin)
    try:
        _store(actor).put_user(user)
    except Conflict:
        raise ApiError(409, "exists", "a user with this email exists", {"email": "taken"}) from None
    _audit(actor, "user.create", user.id)
    return user


def _save(actor: str, user_id: str, change: Any) -> User:
    store = _store(actor)
    for _ in range(5):
        user = get(actor, user_id)
        change(user)
        try:
            store.put_user(user)
            return user
        except Conflict:
            continue
    raise ApiError(409, "conflict", "the user kept changing; try again")


def suspend(actor: str, user_id: str, suspended: bool) -> User:
    if actor == user_id and suspended:
        raise ApiError(409, "self", "you cannot suspend yourself")
    user = get(actor, user_id)
    if suspended:
        cognito._call("admin_disable_user", UserPoolId=_pool(), Username=user.email)
    else:
        cognito._call("admin_enable_user", UserPoolId=_pool(), Username=user.email)

    def change(u: User) -> None:
        u.suspended = suspended
        if suspended:
            u.tokens_valid_after = time.time()

    user = _save(actor, user_id, change)
    _audit(actor, "user.suspend" if suspended else "user.unsuspend", user_id)
    return user


def set_admin(actor: str, user_id: str, admin: bool) -> User:
    if actor == user_id and not admin:
        raise ApiError(409, "self", "you cannot remove your own admin rights")
    user = get(actor, user_id)
    method = "admin_add_user_to_group" if admin else "admin_remove_user_from_group"
    cognito._call(method, UserPoolId=_pool(), Username=user.email, GroupName=ADMINS_GROUP)

    def change(u: User) -> None:
        u.admin = admin
        if not admin:  # tokens carry the group claim: older ones must stop working
            u.tokens_valid_after = time.time()

    user = _save(actor, user_id, change)
    _audit(actor, "user.admin" if admin else "user.unadmin", user_id)
    return user


def delete(actor: str, user_id: str, body: DeleteUser) -> None:
    """Refused while the user owns servers, unless they are transferred to ``transfer_to``."""
    if actor == user_id:
        raise ApiError(409, "self", "you cannot delete yourself")
    store = _store(actor)
    user = get(actor, user_id)
    owned = list(store.list_servers_owned(user_id))
    if owned and not body.transfer_to:
        raise ApiError(409, "owns_servers", f"the user owns {len(owned)} server(s); transfer them first",
                       {"transfer_to": "required while the user owns servers"})
    if owned:
        if body.transfer_to == user_id:
            raise invalid({"transfer_to": "choose another user"})
        target = get(actor, str(body.transfer_to))
        for server in owned:
            _transfer(store, server, target.id)
            _audit(actor, "server.transfer", target.id, server.id)
    cognito._call("admin_delete_user", UserPoolId=_pool(), Username=user.email)
    store.delete_user(user_id)
    _audit(actor, "user.delete", user_id)


def _transfer(store: Store, server: Server, owner_id: str) -> None:
    """Compare-and-set the owner; agent state events bump the server's version, so re-read and retry."""
    for _ in range(8):
        server.owner_id = owner_id
        try:
            store.update_server(server)
            return
        except Conflict:
            try:
                server = store.get_server(server.id)
            except NotFound:
                return  # deleted meanwhile: nothing left to transfer
    raise ApiError(409, "conflict", f"server {server.id} kept changing; try again")


def _audit(actor: str, action: str, subject: str, server_id: str | None = None) -> None:
    _store(actor).add_audit(AuditEntry(actor_id=actor, action=action, server_id=server_id,
                                       details={"user": subject}))
