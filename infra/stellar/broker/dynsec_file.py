"""The dynamic-security JSON file: Mosquitto's on-disk format, shared by both brokers.

Both the Mosquitto plugin and the embedded broker read and write the same document
(clients with PBKDF2-SHA512 password hashes, roles with ACLs, ``defaultACLAccess``), so a
data directory can move between them and tests describe one model, not two.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

FILE_NAME = "dynamic-security.json"
ADMIN_ROLE = "stellar-admin"
# Mosquitto 2.0.11 writes 101 iterations; it honours any stored count, so we store more.
PBKDF2_ITERATIONS = 10_000

DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """Salted PBKDF2-SHA512, encoded exactly as Mosquitto's dynsec stores it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def verify_password(client: dict[str, Any], password: str) -> bool:
    """Constant-time check of ``password`` against a stored dynsec client entry."""
    try:
        salt = base64.b64decode(client["salt"])
        expected = base64.b64decode(client["password"])
        iterations = int(client["iterations"])
    except (KeyError, ValueError, TypeError):
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def admin_acls() -> list[dict[str, Any]]:
    """The control plane's identity: dynsec commands plus everything under ``stellar/v1``."""
    acls = []
    for topic in ("$CONTROL/dynamic-security/#", "stellar/v1/#"):
        for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern"):
            acls.append({"acltype": acltype, "topic": topic, "priority": 0, "allow": True})
    acls.append({"acltype": "unsubscribePattern", "topic": "#", "priority": 0, "allow": True})
    return acls


def ensure_admin(doc: dict[str, Any], username: str, password: str) -> dict[str, Any]:
    """Make ``doc`` contain the admin client (with this password) and its role, in place."""
    doc.setdefault("clients", [])
    doc.setdefault("groups", [])
    doc.setdefault("roles", [])
    doc.setdefault("defaultACLAccess", dict(DEFAULT_ACL_ACCESS))
    doc["roles"] = [r for r in doc["roles"] if r.get("rolename") != ADMIN_ROLE]
    doc["roles"].append({"rolename": ADMIN_ROLE, "acls": admin_acls()})
    doc["clients"] = [c for c in doc["clients"] if c.get("username") != username]
    doc["clients"].append(
        {
            "username": username,
            "textname": "StellarStack control plane",
            "roles": [{"rolename": ADMIN_ROLE}],
            **hash_password(password),
        }
    )
    return doc


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {}


def save(path: Path, doc: dict[str, Any]) -> None:
    """Atomic write (temp file + rename) so a crash never leaves half a credential store."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def prepare(data_dir: Path, username: str, password: str) -> Path:
    """Create or update ``data_dir``'s dynsec file so the given admin can log in."""
    path = data_dir / FILE_NAME
    save(path, ensure_admin(load(path), username, password))
    return path
