"""Short-lived broker credentials for browsers: one user, one server, read-only.

The grant logic lives here, in the control plane, so that it maps onto AWS IoT Core's
custom authorizer (which would look the grant up by username) as well as onto Mosquitto's
dynamic-security roles used locally. Expired grants are revoked by ``sweep``, which the
scheduled ticker calls every minute.
"""

from __future__ import annotations

import secrets
import time

from stellar_protocol import topics

from ..auth.jwt import Principal
from ..config import settings
from ..store import get_store
from ..store.records import Grant, Server
from . import messaging


def mint(principal: Principal, server: Server) -> dict[str, object]:
    cfg = settings()
    username = f"viewer-{secrets.token_hex(8)}"
    password = secrets.token_urlsafe(24)
    expires_at = time.time() + cfg.grant_ttl_s
    get_store().put_grant(Grant(username=username, user_id=principal.user_id, server_id=server.id,
                                node_id=server.node_id, expires_at=expires_at))
    with messaging.broker_admin() as admin:
        admin.grant_viewer(username, password, server.node_id, server.id)
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


def sweep(now: float | None = None) -> int:
    """Revoke every grant past its expiry; returns how many were revoked."""
    store = get_store()
    expired = store.expired_grants(time.time() if now is None else now)
    if not expired:
        return 0
    with messaging.broker_admin() as admin:
        for grant in expired:
            admin.revoke_viewer(grant.username)
            store.delete_grant(grant.username)
    return len(expired)
