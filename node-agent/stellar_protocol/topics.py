"""The MQTT topic catalogue: the one place topic names are built and parsed.

Agents, the control plane, browser grants and the dashboards' documentation all derive
their topic strings from here, so a rename is one edit. Every topic sits under a node,
which is what lets a per-node broker role (Mosquitto dynsec or an AWS IoT policy) confine
a node to its own subtree with literal ACLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "stellar/v1"

# Identifiers that may appear inside a topic: no MQTT wildcards, separators or '$'.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_id(value: str, what: str = "id") -> str:
    """Refuse identifiers that could widen or break a topic (``+``, ``#``, ``/``, ``$``)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"invalid {what} for a topic: {value!r}")
    return value


def node_root(node_id: str) -> str:
    return f"{PREFIX}/nodes/{check_id(node_id, 'node id')}"


def node_commands(node_id: str) -> str:
    """Control plane → agent: commands (QoS 1, persistent session)."""
    return f"{node_root(node_id)}/cmd"


def node_acks(node_id: str) -> str:
    """Agent → control plane: one acknowledgement per command id."""
    return f"{node_root(node_id)}/ack"


def node_replies(node_id: str) -> str:
    """Agent → control plane: results of request/response commands (file manager)."""
    return f"{node_root(node_id)}/reply"


def server_backups(node_id: str, server_id: str) -> str:
    """Agent → control plane and viewers: backup/restore progress and outcome."""
    return f"{server_root(node_id, server_id)}/backup"


def node_status(node_id: str) -> str:
    """Agent → everyone: retained online/offline; the last will sets offline."""
    return f"{node_root(node_id)}/status"


def server_root(node_id: str, server_id: str) -> str:
    return f"{node_root(node_id)}/servers/{check_id(server_id, 'server id')}"


def server_console(node_id: str, server_id: str) -> str:
    """Agent → viewers: batches of console lines."""
    return f"{server_root(node_id, server_id)}/console"


def server_state(node_id: str, server_id: str) -> str:
    """Agent → viewers and control plane: retained power state with a sequence number."""
    return f"{server_root(node_id, server_id)}/state"


def server_stats(node_id: str, server_id: str) -> str:
    """Agent → viewers: resource usage samples."""
    return f"{server_root(node_id, server_id)}/stats"


def server_viewer_filter(node_id: str, server_id: str) -> str:
    """The one filter a browser grant may subscribe to."""
    return f"{server_root(node_id, server_id)}/#"


def node_filter(node_id: str) -> str:
    """Everything a node owns; the node's broker role is built from this."""
    return f"{node_root(node_id)}/#"


ALL_SERVER_STATES = f"{PREFIX}/nodes/+/servers/+/state"
ALL_NODE_STATUS = f"{PREFIX}/nodes/+/status"
ALL_NODE_ACKS = f"{PREFIX}/nodes/+/ack"
ALL_NODE_REPLIES = f"{PREFIX}/nodes/+/reply"
ALL_SERVER_BACKUPS = f"{PREFIX}/nodes/+/servers/+/backup"


@dataclass(frozen=True)
class Channel:
    """One row of the catalogue: where a message goes, what it carries, how it is sent."""

    kind: str  # the last topic segment, as returned by ``parse``
    address: str  # AsyncAPI address with {nodeId} / {serverId} parameters
    sender: str  # "control-plane" or "agent"
    payload: str  # model name in ``stellar_protocol.messages``
    qos: int
    retain: bool
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel("cmd", f"{PREFIX}/nodes/{{nodeId}}/cmd", "control-plane", "Command", 1, False,
            "Commands for one node (QoS 1, persistent session). Delivered twice, run once."),
    Channel("ack", f"{PREFIX}/nodes/{{nodeId}}/ack", "agent", "Ack", 1, False,
            "One acknowledgement per command delivery, with the result or the error."),
    Channel("reply", f"{PREFIX}/nodes/{{nodeId}}/reply", "agent", "Reply", 1, False,
            "Results of request/response commands (server.files), matched to the request by id."),
    Channel("backup", f"{PREFIX}/nodes/{{nodeId}}/servers/{{serverId}}/backup", "agent", "BackupEvent", 1, False,
            "Backup and restore progress; the final create event carries size, sha256 and part ETags."),
    Channel("status", f"{PREFIX}/nodes/{{nodeId}}/status", "agent", "NodeStatus", 1, True,
            "Retained online/offline (the last will sets offline) and the periodic heartbeat."),
    Channel("state", f"{PREFIX}/nodes/{{nodeId}}/servers/{{serverId}}/state", "agent", "StateMessage", 1, True,
            "Retained power state of one server; always published. Empty payload: server deleted."),
    Channel("console", f"{PREFIX}/nodes/{{nodeId}}/servers/{{serverId}}/console", "agent", "ConsoleMessage", 1,
            False, "Console batches; published only while a viewer holds a grant (viewer.grant)."),
    Channel("stats", f"{PREFIX}/nodes/{{nodeId}}/servers/{{serverId}}/stats", "agent", "StatsMessage", 0, False,
            "Resource usage every second while running and viewed."),
)


def channel(kind: str) -> Channel:
    """The catalogue row for a topic kind (``parse(topic).kind``)."""
    for row in CHANNELS:
        if row.kind == kind:
            return row
    raise KeyError(kind)


@dataclass(frozen=True)
class ParsedTopic:
    node_id: str
    kind: str
    server_id: str | None = None


def parse(topic: str) -> ParsedTopic:
    """Split a concrete topic into its parts; raise ValueError for anything not ours."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/") or len(parts) < 5 or parts[2] != "nodes":
        raise ValueError(f"not a StellarStack topic: {topic!r}")
    node_id = check_id(parts[3], "node id")
    if len(parts) == 5 and parts[4] in {"cmd", "ack", "status", "reply"}:
        return ParsedTopic(node_id, parts[4])
    if len(parts) == 7 and parts[4] == "servers" and parts[6] in {"console", "state", "stats", "backup"}:
        return ParsedTopic(node_id, parts[6], check_id(parts[5], "server id"))
    raise ValueError(f"not a StellarStack topic: {topic!r}")
