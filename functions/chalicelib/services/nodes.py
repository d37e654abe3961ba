"""Locations and nodes: admin CRUD, one-time enrollment, liveness, and reconciliation.

Liveness has two signals, so a dead node shows offline within ``OFFLINE_BOUND_S``: the
broker's last will (fires when the connection drops or keepalive lapses) and the age of the
last heartbeat (``STALE_HEARTBEATS`` periods without one, checked on every read and by the
ticker). A status message is ordered by ``(session, offline, ts)``: each agent connection
has a session stamp, its last will carries it, so a will from an old connection never
overrides a newer connection's "online" and, within one connection, "offline" is final.

Reconciliation runs when a node starts a new session: the heartbeat lists what the node
really runs, which is compared with the store (servers deleted while it was away are
removed, suspended servers found running are stopped, strays are reported).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stellar_protocol.messages import DeleteCommand, NodeStatus, PowerCommand

from ..broker.publisher import BrokerUnavailable
from ..errors import ApiError, invalid, not_found
from ..store import Conflict, NotFound, Store, get_store
from ..store.records import Location, Node, new_id
from . import messaging

log = logging.getLogger(__name__)

_ID = r"^[A-Za-z0-9_-]{1,64}$"
ENROLL_TTL_S = 3600
STALE_HEARTBEATS = 2.0  # a node silent for this many heartbeat periods counts as offline
DEFAULT_HEARTBEAT_S = 30.0  # agents that do not say their period (older versions)
CAS_RETRIES = 8


def _admin(reason: str) -> Store:
    return get_store().as_admin(reason)


# ---- locations ------------------------------------------------------------------------


class LocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=_ID)
    name: str = Field(min_length=1, max_length=64)


class LocationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


def location_view(loc: Location) -> dict[str, Any]:
    return {"id": loc.id, "name": loc.name}


def create_location(body: LocationBody) -> Location:
    loc = Location(id=body.id or new_id(), name=body.name)
    try:
        _admin("admin: create location").create_location(loc)
    except Conflict:
        raise ApiError(409, "exists", f"location {loc.id} exists") from None
    return loc


def get_location(location_id: str) -> Location:
    try:
        return _admin("admin: read location").get_location(location_id)
    except NotFound:
        raise not_found("location") from None


def rename_location(location_id: str, body: LocationPatch) -> Location:
    store = _admin("admin: rename location")
    for _ in range(CAS_RETRIES):
        loc = get_location(location_id)
        loc.name = body.name
        try:
            store.update_location(loc)
            return loc
        except Conflict:
            continue
    raise ApiError(409, "conflict", "the location kept changing; try again")


def delete_location(location_id: str) -> None:
    try:
        _admin("admin: delete location").delete_location(location_id)
    except NotFound:
        raise not_found("location") from None
    except Conflict:
        raise ApiError(409, "in_use", "the location still has nodes; move or delete them first") from None


# ---- nodes ----------------------------------------------------------------------------


def _check_ranges(start: int | None, end: int | None, ranges: list[tuple[int, int]]) -> None:
    if start is not None and end is not None and start > end:
        raise ValueError("port_start must not exceed port_end")
    for first, last in ranges:
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"bad port range [{first}, {last}]")


class NodeFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64)
    location_id: str | None = Field(default=None, pattern=_ID)
    address: str | None = Field(default=None, min_length=1, max_length=253)
    addresses: list[str] | None = Field(default=None, max_length=16)
    memory_mb: int | None = Field(default=None, ge=64, le=16_777_216)
    disk_mb: int | None = Field(default=None, ge=64, le=1_073_741_824)
    cpu_percent: int | None = Field(default=None, ge=10, le=1_000_000)
    overallocate_percent: int | None = Field(default=None, ge=0, le=1000)
    port_start: int | None = Field(default=None, ge=1, le=65535)
    port_end: int | None = Field(default=None, ge=1, le=65535)
    port_ranges: list[tuple[int, int]] | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _ports(self) -> NodeFields:
        _check_ranges(self.port_start, self.port_end, self.port_ranges or [])
        return self


class NodeBody(NodeFields):
    """Create: everything placement needs is required."""

    id: str | None = Field(default=None, pattern=_ID)
    name: str = Field(min_length=1, max_length=64)  # type: ignore[assignment]
    location_id: str = Field(pattern=_ID)  # type: ignore[assignment]
    address: str = Field(min_length=1, max_length=253)  # type: ignore[assignment]
    memory_mb: int = Field(ge=64, le=16_777_216)  # type: ignore[assignment]
    disk_mb: int = Field(ge=64, le=1_073_741_824)  # type: ignore[assignment]
    port_start: int = Field(ge=1, le=65535)  # type: ignore[assignment]
    port_end: int = Field(ge=1, le=65535)  # type: ignore[assignment]

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("viewer"):
            raise ValueError("node ids may not start with 'viewer'")
        return value


def node_view(node: Node, now: float | None = None) -> dict[str, Any]:
    return {
        "id": node.id, "name": node.name, "location_id": node.location_id, "address": node.address,
        "addresses": node.addresses, "memory_mb": node.memory_mb, "disk_mb": node.disk_mb,
        "cpu_percent": node.cpu_percent, "overallocate_percent": node.overallocate_percent,
        "port_start": node.port_start, "port_end": node.port_end,
        "port_ranges": [list(r) for r in node.port_ranges], "status": effective_status(node, now),
        "last_seen": node.last_seen, "heartbeat_s": node.heartbeat_s, "runtime": node.runtime,
        "isolated": node.isolated, "enrolled_at": node.enrolled_at,
    }


def effective_status(node: Node, now: float | None = None) -> str:
    """``online`` only while heartbeats keep coming: a node that went silent is offline even
    before its last will (or the ticker) wrote that down."""
    if node.status != "online":
        return "offline"
    if node.last_seen is None:
        return "offline"
    period = node.heartbeat_s or DEFAULT_HEARTBEAT_S
    now = time.time() if now is None else now
    return "online" if now - node.last_seen <= STALE_HEARTBEATS * period else "offline"


def get_node(node_id: str) -> Node:
    try:
        return _admin("admin: read node").get_node(node_id)
    except NotFound:
        raise not_found("node") from None


def list_nodes(location_id: str | None = None) -> list[Node]:
    return _admin("admin: list nodes").list_nodes(location_id)


def create_node(body: NodeBody) -> Node:
    store = _admin("admin: create node")
    try:
        store.get_location(body.location_id)
    except NotFound:
        raise invalid({"location_id": "unknown location"}) from None
    fields = body.model_dump(exclude_none=True)
    fields["id"] = body.id or new_id()
    node = Node(**fields)
    try:
        store.get_node(node.id)
        raise ApiError(409, "exists", f"node {node.id} exists")
    except NotFound:
        pass
    try:
        store.put_node(node)  # version 0: a create, refused if someone created it meanwhile
    except Conflict:
        raise ApiError(409, "exists", f"node {node.id} exists") from None
    return node


def mutate_node(node_id: str, change: Callable[[Node], None], reason: str) -> Node:
    """Read-modify-write with the version as condition; heartbeats bump it, so retry."""
    store = _admin(reason)
    for _ in range(CAS_RETRIES):
        try:
            node = store.get_node(node_id)
        except NotFound:
            raise not_found("node") from None
        change(node)
        try:
            store.put_node(node)
            return node
        except Conflict:
            continue
    raise ApiError(409, "conflict", "the node kept changing; try again")


def update_node(node_id: str, body: NodeFields) -> Node:
    patch = body.model_dump(exclude_none=True)
    if "location_id" in patch:
        try:
            _admin("admin: update node").get_location(patch["location_id"])
        except NotFound:
            raise invalid({"location_id": "unknown location"}) from None

    def change(node: Node) -> None:
        for key, value in patch.items():
            setattr(node, key, value)
        if node.port_start > node.port_end:
            raise invalid({"port_end": "port_start must not exceed port_end"})
        taken = {a.port for a in _admin("admin: update node").allocations(node.id)}
        lost = sorted(taken - set(node.port_pool()))
        if lost:
            raise invalid({"port_ranges": f"ports in use would leave the node's ranges: {lost[:10]}"})

    return mutate_node(node_id, change, "admin: update node")


def delete_node(node_id: str) -> None:
    store = _admin("admin: delete node")
    try:
        node = store.get_node(node_id)
    except NotFound:
        raise not_found("node") from None
    if store.list_servers_on_node(node_id, limit=1):
        raise ApiError(409, "in_use", "the node still has servers; delete or move them first")
    try:
        store.delete_node(node)
    except NotFound:
        return
    except Conflict:
        raise ApiError(409, "in_use", "the node has servers or changed meanwhile; try again") from None


# ---- enrollment -----------------------------------------------------------------------


def _token_hash(secret: str) -> str:
    """SHA-256 suffices: the secret is 32 random bytes, not a guessable password."""
    return hashlib.sha256(secret.encode()).hexdigest()


def panel_url(headers: dict[str, str]) -> str:
    """The URL agents should use: STELLAR_PANEL_URL, else what this request came in on."""
    configured = os.environ.get("STELLAR_PANEL_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    host = headers.get("x-forwarded-host") or headers.get("host") or "localhost"
    proto = headers.get("x-forwarded-proto") or ("http" if host.startswith(("127.", "localhost")) else "https")
    return f"{proto}://{host}"


def issue_enrollment(node_id: str, panel: str, ttl_s: int = ENROLL_TTL_S) -> dict[str, Any]:
    """A fresh one-time token (any earlier one stops working) and the command to run with it."""
    secret = secrets.token_urlsafe(32)
    expires = time.time() + ttl_s

    def change(node: Node) -> None:
        node.enroll_token_hash, node.enroll_expires_at = _token_hash(secret), expires

    mutate_node(node_id, change, "admin: issue enrollment token")
    token = f"{node_id}.{secret}"
    config = "/etc/stellar/agent.yaml"
    command = (f"stellar-agent enroll --panel {panel} --token {token} --config {config}"
               f" && stellar-agent run --config {config}")
    return {"node_id": node_id, "token": token, "expires_at": expires, "command": command}


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=200)
    node_id: str | None = Field(default=None, pattern=_ID)
    hostname: str | None = Field(default=None, max_length=253)


def _refused() -> ApiError:
    return ApiError(401, "bad_token", "the enrollment token is invalid, used or expired")


def agent_broker() -> dict[str, Any]:
    """Where agents reach the broker; may differ from the control plane's own view of it."""
    from ..config import settings

    cfg = settings()
    return {
        "host": os.environ.get("STELLAR_AGENT_BROKER_HOST") or cfg.broker_host,
        "port": int(os.environ.get("STELLAR_AGENT_BROKER_PORT") or cfg.broker_port),
        "tls": os.environ.get("STELLAR_AGENT_BROKER_TLS", "") == "1",
    }


def register(body: RegisterBody) -> dict[str, Any]:
    """Consume the token (exactly once, by compare-and-set) and hand out the node's identity."""
    node_id, sep, secret = body.token.partition(".")
    if not sep or not re.match(_ID, node_id) or (body.node_id and body.node_id != node_id):
        raise _refused()
    if messaging.broker_kind() == messaging.IOT_CORE:
        raise ApiError(501, "unsupported", "enrollment with AWS IoT Core needs a device certificate; "
                                           "provision the node with `stellar` instead")
    store = _admin("node enrollment")
    try:
        node = store.get_node(node_id)
    except NotFound:
        raise _refused() from None
    if node.enroll_token_hash is None or node.enroll_expires_at is None or node.enroll_expires_at < time.time() \
            or not hmac.compare_digest(node.enroll_token_hash, _token_hash(secret)):
        raise _refused()
    node.enroll_token_hash, node.enroll_expires_at, node.enrolled_at = None, None, time.time()
    try:
        store.put_node(node)  # the version read above is the condition: of two uses, one wins
    except Conflict:
        raise _refused() from None
    password = secrets.token_urlsafe(32)
    try:
        with messaging.broker_admin() as admin:
            username = admin.ensure_node_identity(node_id, password)  # type: ignore[union-attr]
    except BrokerUnavailable:
        raise ApiError(503, "broker_unavailable", "the broker cannot be reached; issue a new token and retry") \
            from None
    log.info("node %s enrolled (host %s)", node_id, body.hostname or "?")
    return {"node_id": node_id, "broker": {**agent_broker(), "username": username, "password": password},
            "config": {"heartbeat_s": 30, "keepalive_s": 3}}


# ---- liveness and reconciliation ------------------------------------------------------


def _order(session: float | None, offline: bool, ts: float | None) -> tuple[float, int, float]:
    ts_ = ts if ts is not None else float("-inf")
    return (session if session is not None else ts_, 1 if offline else 0, ts_)


def record_status(node_id: str, status: NodeStatus, now: float | None = None) -> bool:
    """Apply a node status if it is newer than the stored one; reconcile on a new session."""
    store = _admin("event ingestion")
    now = time.time() if now is None else now
    offline = status.status == "offline"
    new_key = _order(status.session, offline, status.ts)
    for _ in range(CAS_RETRIES):
        node = store.get_node(node_id)
        old_key = _order(node.session, node.offline_reported, node.status_ts)
        if new_key <= old_key:
            return False  # older, or the same message again
        new_session = status.session is not None and status.session != node.session
        node.status, node.status_ts, node.offline_reported = status.status, status.ts, offline
        node.session = status.session if status.session is not None else node.session
        if status.runtime is not None:
            node.runtime = status.runtime
        if status.isolated is not None:
            node.isolated = status.isolated
        if not offline:
            node.last_seen = now  # our clock: staleness must not depend on the node's
            node.heartbeat_s = status.heartbeat_s or node.heartbeat_s
            if status.servers is not None:  # a deletion the node no longer lists is finished
                node.pending_deletes = [s for s in node.pending_deletes if s in status.servers]
        try:
            store.put_node(node)
        except Conflict:
            continue
        if not offline and status.servers is not None and new_session:
            reconcile(node, status.servers)
        return True
    raise Conflict(f"node {node_id} kept changing")


def sweep(now: float | None = None) -> int:
    """Write down nodes whose heartbeats stopped (the ticker); returns how many it marked."""
    now = time.time() if now is None else now
    marked = 0
    for node in _admin("node liveness sweep").list_nodes():
        if node.status == "online" and effective_status(node, now) == "offline":

            def change(n: Node) -> None:
                if n.status == "online" and effective_status(n, now) == "offline":
                    n.status = "offline"  # not offline_reported: a late heartbeat of this session revives it

            mutate_node(node.id, change, "node liveness sweep")
            log.warning("node %s missed its heartbeats: marked offline", node.id)
            marked += 1
    return marked


def reconcile(node: Node, actual: dict[str, str]) -> dict[str, list[str]]:
    """Compare what the node runs with the store; fix what is safe, report the rest."""
    store = _admin("reconciliation")
    desired = {s.id: s for s in store.list_servers_on_node(node.id)}
    report: dict[str, list[str]] = {"deleted": [], "stopped": [], "unknown": [], "missing": []}
    for sid, state in actual.items():
        server = desired.get(sid)
        try:
            if server is None and sid in node.pending_deletes:
                messaging.send_command(node.id, DeleteCommand(server_id=sid))
                report["deleted"].append(sid)
            elif server is None:
                report["unknown"].append(sid)  # never deleted through us: reported, never destroyed
            elif server.suspended and state in {"starting", "running"}:
                messaging.send_command(node.id, PowerCommand(server_id=sid, action="kill"))
                report["stopped"].append(sid)
        except BrokerUnavailable as exc:
            log.error("reconciliation of %s on %s not sent: %s", sid, node.id, exc)
    report["missing"] = [sid for sid, s in desired.items() if sid not in actual and s.status != "installing"]
    if any(report.values()):
        log.warning("reconciled node %s: %s", node.id, report)
    return report
