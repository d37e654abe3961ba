"""Long-lived MQTT connections for the control plane: a publisher and a subscriber.

One paho client per object, connected lazily and kept alive by paho's network thread
(which reconnects on its own). MQTT 3.1.1 so the same code talks to Mosquitto, the
embedded broker and AWS IoT Core.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached, refused us, or did not acknowledge in time."""


def _new_client(prefix: str, username: str, password: str) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{prefix}-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.username_pw_set(username, password)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


class _Connection:
    """A paho client plus the bookkeeping to know whether it is usable right now."""

    def __init__(self, host: str, port: int, username: str, password: str, prefix: str) -> None:
        self.host, self.port = host, port
        self._username, self._password, self._prefix = username, password, prefix
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._client: mqtt.Client | None = None
        self._connected = False
        self._refused: str | None = None
        self.on_connected: Callable[[mqtt.Client], None] | None = None

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self._connected = rc == 0
            self._refused = None if rc == 0 else str(rc)
            self._cond.notify_all()
        if rc == 0 and self.on_connected is not None:
            self.on_connected(client)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def client(self, timeout: float) -> mqtt.Client:
        """The connected client, connecting first if needed; BrokerUnavailable otherwise."""
        with self._lock:
            if self._client is None:
                client = _new_client(self._prefix, self._username, self._password)
                client.on_connect = self._on_connect
                client.on_disconnect = self._on_disconnect
                try:
                    client.connect(self.host, self.port, keepalive=30)
                except OSError as exc:
                    raise BrokerUnavailable(f"{self.host}:{self.port} unreachable: {exc}") from exc
                client.loop_start()
                self._client = client
            client = self._client
        with self._cond:
            self._cond.wait_for(lambda: self._connected or self._refused is not None, timeout)
            if self._connected:
                return client
            reason = f"refused: {self._refused}" if self._refused else "not connected"
        if self._refused:
            self.close()  # bad credentials will not fix themselves; retry afresh next time
        raise BrokerUnavailable(f"{self.host}:{self.port} {reason}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        with self._cond:
            self._connected = False
            self._refused = None


class Publisher:
    """Publish with delivery confirmation; safe to share between threads."""

    def __init__(
        self, host: str, port: int, username: str, password: str, client_id_prefix: str = "stellar-cp"
    ) -> None:
        self._conn = _Connection(host, port, username, password, client_id_prefix)

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> None:
        """Return once the broker has the message (PUBACK for QoS 1, written for QoS 0).

        Raises BrokerUnavailable otherwise. A message that timed out may still reach the
        broker later (paho keeps it queued), so QoS 1 consumers must tolerate duplicates.
        """
        deadline = time.monotonic() + timeout
        client = self._conn.client(timeout)
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailable(f"publish to {topic!r} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerUnavailable(f"no acknowledgement for {topic!r} within {timeout}s")

    def ping(self, timeout: float = 2.0) -> None:
        """Raise BrokerUnavailable unless a connection to the broker is up (health checks)."""
        self._conn.client(timeout)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """Deliver every message matching ``filters`` to ``on_message(topic, payload)``.

    Subscriptions are (re)made on every connect, so a broker restart is survived. The
    callback runs on paho's network thread; exceptions are logged, never propagated.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        filters: Iterable[str],
        on_message: Callable[[str, bytes], None],
        qos: int = 1,
        client_id_prefix: str = "stellar-cp-sub",
    ) -> None:
        self.filters = list(filters)
        self._qos = qos
        self._callback = on_message
        self._suback = threading.Event()
        self._granted: list[int] = []
        self._conn = _Connection(host, port, username, password, client_id_prefix)
        self._conn.on_connected = self._subscribe

    def _subscribe(self, client: mqtt.Client) -> None:
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.subscribe([(f, self._qos) for f in self.filters])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[mqtt.ReasonCode], _p: object
    ) -> None:
        self._granted = [c.value for c in codes]
        self._suback.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._callback(msg.topic, msg.payload)
        except Exception:
            log.exception("subscriber callback failed for %s", msg.topic)

    def start(self, timeout: float = 5.0) -> Subscriber:
        """Connect and wait for the SUBACK; raise BrokerUnavailable if any filter is refused."""
        self._conn.client(timeout)
        if not self._suback.wait(timeout):
            raise BrokerUnavailable("no SUBACK")
        refused = [f for f, code in zip(self.filters, self._granted, strict=False) if code >= 0x80]
        if refused:
            self.close()
            raise BrokerUnavailable(f"subscription refused: {refused}")
        return self

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
