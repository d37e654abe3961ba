"""AWS IoT Core custom authorizer for browser MQTT connections (the dashboard's console view).

Locally Mosquitto checks a grant's password itself (dynsec); IoT Core instead calls this
function on every MQTT CONNECT that names our authorizer. It looks the grant up by the
MQTT username, checks expiry and the scrypt hash stored at mint time (the password itself is
never stored), and answers with an IoT policy limited to that one server's topics, built
from ``stellar_protocol.topics`` so it cannot drift from what the agent publishes. Anything
else is a plain deny: IoT Core then refuses the connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from stellar_protocol import topics

from ..store import NotFound, get_store
from ..store.records import Grant

log = logging.getLogger(__name__)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_SESSION_S = 300  # IoT Core's lower bound for disconnectAfterInSeconds / refreshAfterInSeconds
MAX_SESSION_S = 86_400


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64): slow to brute-force if the table ever leaks."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str | None) -> bool:
    if not encoded:
        return False
    try:
        kind, n, r, p, salt, digest = encoded.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _arn_prefix(context: Any) -> str:
    """``arn:aws:iot:<region>:<account>``, from the invoked function's ARN (or the environment)."""
    arn = getattr(context, "invoked_function_arn", "") or ""
    parts = arn.split(":")
    if len(parts) >= 5 and parts[3] and parts[4]:
        return f"arn:{parts[1]}:iot:{parts[3]}:{parts[4]}"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"arn:aws:iot:{region}:{os.environ.get('STELLAR_AWS_ACCOUNT_ID', '*')}"


def viewer_policy(grant: Grant, arn_prefix: str) -> dict[str, Any]:
    """Connect as the grant's client id; subscribe to and receive one server's subtree; nothing else."""
    filter_ = topics.server_viewer_filter(grant.node_id, grant.server_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn_prefix}:client/{grant.username}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{arn_prefix}:topicfilter/{filter_}"},
            {"Effect": "Allow", "Action": "iot:Receive",
             "Resource": f"{arn_prefix}:topic/{topics.server_root(grant.node_id, grant.server_id)}/*"},
        ],
    }


def _deny() -> dict[str, Any]:
    return {"isAuthenticated": False}


def _credentials(event: dict[str, Any]) -> tuple[str, str, str] | None:
    mqtt = ((event.get("protocolData") or {}).get("mqtt") or {})
    username = str(mqtt.get("username") or "")
    # Clients may name the authorizer in the username: "viewer-…?x-amz-customauthorizer-name=…".
    username = username.split("?", 1)[0]
    try:
        password = base64.b64decode(mqtt.get("password") or "", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not username or not password:
        return None
    return username, password, str(mqtt.get("clientId") or "")


def authorize(event: dict[str, Any], context: Any = None, now: float | None = None) -> dict[str, Any]:
    """The authorizer's answer for one CONNECT (see the AWS IoT custom-authentication docs)."""
    creds = _credentials(event)
    if creds is None:
        return _deny()
    username, password, client_id = creds
    if not re.fullmatch(r"viewer-[0-9a-f]{16}", username) or (client_id and client_id != username):
        return _deny()
    try:
        grant = get_store().as_admin("broker authorizer").get_grant(username)
    except NotFound:
        log.info("broker connect refused: unknown grant %s", username)
        return _deny()
    now = time.time() if now is None else now
    remaining = int(grant.expires_at - now)
    if remaining <= 0 or not verify_password(password, grant.password_hash):
        log.info("broker connect refused for %s: %s", username, "expired" if remaining <= 0 else "bad password")
        return _deny()
    session = max(MIN_SESSION_S, min(MAX_SESSION_S, remaining))
    return {
        "isAuthenticated": True,
        "principalId": re.sub(r"[^A-Za-z0-9]", "", username),
        "disconnectAfterInSeconds": session,
        "refreshAfterInSeconds": session,
        "policyDocuments": [json.dumps(viewer_policy(grant, _arn_prefix(context)))],
    }
