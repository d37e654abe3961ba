"""Ingestion of agent events into the store (an IoT rule → Lambda in AWS, a bridge locally).

Idempotent and ordered: a state carries a per-server sequence number and an older one
never overwrites a newer one; node status is ordered by the agent's connection session
and timestamp (``services.nodes.record_status``).
"""

from __future__ import annotations

import logging

from stellar_protocol import topics
from stellar_protocol.messages import BackupEvent, NodeStatus, ProtocolError, StateMessage, decode

from ..store import NotFound, get_store
from . import backups, nodes

log = logging.getLogger(__name__)


def ingest(topic: str, payload: bytes) -> bool:
    """Apply one message; returns True when it changed the store."""
    try:
        where = topics.parse(topic)
        if where.kind == "state" and where.server_id:
            msg = decode(StateMessage, payload)
            if msg.server_id != where.server_id:
                raise ProtocolError("server id in payload does not match the topic")
            store = get_store().as_admin("event ingestion")
            if store.get_server(msg.server_id).node_id != where.node_id:
                raise ProtocolError(f"node {where.node_id} does not host server {msg.server_id}")
            return store.apply_state(msg.server_id, msg.state, msg.seq, msg.detail)
        if where.kind == "backup" and where.server_id:
            event = decode(BackupEvent, payload)
            if get_store().as_admin("event ingestion").get_server(where.server_id).node_id != where.node_id:
                raise ProtocolError(f"node {where.node_id} does not host server {where.server_id}")
            return backups.ingest(where.server_id, event)  # completes the S3 upload, then retention
        if where.kind == "status":
            # Ordered by (session, offline, ts) and reconciled on a new session: see services.nodes.
            return nodes.record_status(where.node_id, decode(NodeStatus, payload))
    except (ValueError, ProtocolError) as exc:
        log.warning("dropped event on %s: %s", topic, exc)
    except NotFound:
        log.info("event for unknown node or server on %s", topic)
    return False
