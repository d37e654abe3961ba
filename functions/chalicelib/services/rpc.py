"""Request/response with agents: publish a command, wait for its ``Reply`` on the node's reply topic.

One subscriber per process (to every node's reply topic) feeds a table of waiters keyed by
command id, so concurrent requests share one connection. The subscription is made before
the first command is sent, so a fast reply is never missed. A request that gets no answer
in time is a 504: the node may be offline or busy, and the caller may retry (file commands
are safe to retry: each has a fresh id and the agent runs an id once).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from stellar_protocol import topics
from stellar_protocol.messages import ProtocolError, Reply, decode

from ..broker.publisher import BrokerUnavailable, Subscriber
from ..config import settings
from ..errors import ApiError
from . import messaging

DEFAULT_TIMEOUT_S = 20.0


class _Replies:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[Reply]]] = {}
        cfg = settings()
        self._sub = Subscriber(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username,
                               cfg.broker_admin_password, [topics.ALL_NODE_REPLIES], self._on_message,
                               client_id_prefix="stellar-cp-rpc").start()

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            reply = decode(Reply, payload)
        except ProtocolError:
            return
        with self._lock:
            slot = self._waiting.get(reply.id)
        if slot is not None:
            slot[1].append(reply)
            slot[0].set()

    def call(self, node_id: str, command: Any, timeout: float) -> Reply:
        done: threading.Event = threading.Event()
        box: list[Reply] = []
        with self._lock:
            self._waiting[command.id] = (done, box)
        try:
            messaging.send_command(node_id, command)
            if not done.wait(timeout):
                raise ApiError(504, "node_timeout", f"the node did not answer within {timeout:g}s")
            return box[0]
        finally:
            with self._lock:
                self._waiting.pop(command.id, None)

    def close(self) -> None:
        self._sub.close()


@lru_cache(maxsize=1)
def _replies() -> _Replies:
    return _Replies()


def call(node_id: str, command: Any, timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
    """Send ``command`` to the node and return its Reply; ApiError 503/504 when the node cannot answer."""
    if messaging.broker_kind() == messaging.IOT_CORE:
        raise ApiError(501, "not_supported", "request/response file commands need the MQTT broker (see issue 8)")
    try:
        return _replies().call(node_id, command, timeout)
    except BrokerUnavailable as exc:
        raise ApiError(503, "broker_unavailable", f"the node cannot be reached: {exc}") from None


def reset() -> None:
    if _replies.cache_info().currsize:
        _replies().close()
    _replies.cache_clear()
