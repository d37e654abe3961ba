"""Short-lived broker credentials for browsers: one user, one server, read-only.

The grant logic lives here, in the control plane, so that it maps onto AWS IoT Core's
custom authorizer (which would look the grant up by username) as well as onto Mosquitto's
dynamic-security roles used locally. Expired grants are revoked by ``sweep``, which the
scheduled ticker calls every minute; ``revoke`` ends a user's (or everyone's) grants on one
server at once, when their permissions change or the server goes: deleting the dynsec client
disconnects the live viewer, so the broker stops delivering to it immediately.
"""

from __future__ import annotations

import logging
import secrets
import time

from stellar_protocol import topics
from stellar_protocol.messages import ViewerCommand

from ..auth.jwt import Principal
from ..broker.publisher import BrokerUnavailable
from ..config import settings
from ..store import for_principal, get_store
from ..store.base import ADMIN_BYPASS_RETENTION_DAYS
from ..store.records import Grant, Server
from . import broker_auth, messaging

log = logging.getLogger(__name__)


def mint(principal: Principal, server: Server) -> dict[str, object]:
    cfg = settings()
    username = f"viewer-{secrets.token_hex(8)}"
    password = secrets.token_urlsafe(24)
    expires_at = time.time() + cfg.grant_ttl_s
    store = for_principal(principal.user_id, principal.is_admin)
    store.put_grant(Grant(username=username, user_id=principal.user_id, server_id=server.id,
                                node_id=server.node_id, expires_at=expires_at,
                                password_hash=broker_auth.hash_password(password)))
    with messaging.broker_admin() as admin:
        admin.grant_viewer(username, password, server.node_id, server.id)
    _tell_node(server, expires_at)
    return {
        "url": cfg.broker_ws_url,
        "username": username,
        "password": password,
        "client_id": username,
        "expires_at": expires_at,
        "topics": {
            "console": topics.server_console(server.node_id, server.id),
            "state": topics.server_state(server.node_id, server.id),
            "stats": topics.server_stats(server.node_id, server.id),
        },
    }


def _tell_node(server: Server, expires_at: float) -> None:
    """The cost rule: the agent streams console and stats only while it knows of a live grant.

    Best effort: if the node cannot be reached now the grant still works, the viewer just
    sees state changes until the next grant is minted.
    """
    try:
        messaging.send_command(server.node_id, ViewerCommand(server_id=server.id, until=expires_at))
    except BrokerUnavailable:
        log.warning("could not tell node %s about a viewer of %s", server.node_id, server.id)


def sweep(now: float | None = None) -> int:
    """Revoke every grant past its expiry; returns how many were revoked."""
    store = get_store().as_admin("grant sweeper")
    try:  # the retention of the admin-bypass trail rides on the same minute tick
        store.prune_admin_bypass(ADMIN_BYPASS_RETENTION_DAYS)
    except Exception:  # never let it stop revocation
        log.exception("pruning the admin-bypass trail failed")
    expired = store.expired_grants(time.time() if now is None else now)
    if not expired:
        return 0
    with messaging.broker_admin() as admin:
        for grant in expired:
            admin.revoke_viewer(grant.username)
            store.delete_grant(grant.username)
    return len(expired)


def revoke(server_id: str, user_id: str | None = None) -> int:
    """Revoke the live grants of ``user_id`` (None: of everyone) on a server; returns how many.

    Broker first, then the store: if the broker cannot be reached the grants stay stored, so
    the sweeper still revokes them at expiry, and the error reaches the caller.
    """
    store = get_store().as_admin(f"revoke viewer grants on {server_id}")
    found = store.list_grants(server_id, user_id)
    if not found:
        return 0
    with messaging.broker_admin() as admin:
        for grant in found:
            admin.revoke_viewer(grant.username)
            store.delete_grant(grant.username)
    log.info("revoked %d viewer grant(s) on %s%s", len(found), server_id, f" of {user_id}" if user_id else "")
    return len(found)
