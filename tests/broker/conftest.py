"""Fixtures: one broker of each kind per module, plus a small synchronous MQTT client."""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from chalicelib.broker import DynsecAdmin
from stellar.broker import BrokerHandle, mosquitto, start_broker

ADMIN = ("stellar-admin", "admin-secret-pw")
KINDS = [
    pytest.param("mosquitto", marks=pytest.mark.skipif(mosquitto.find_binary() is None, reason="no mosquitto")),
    "embedded",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def start(kind: str, data_dir: Path) -> BrokerHandle:
    return start_broker(data_dir, free_port(), free_port(), *ADMIN, prefer=kind)


@pytest.fixture(scope="module", params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
    handle = start(request.param, tmp_path_factory.mktemp(request.param))
    yield handle
    handle.stop()


@pytest.fixture
def admin(broker: BrokerHandle) -> Iterator[DynsecAdmin]:
    with DynsecAdmin(broker.host, broker.tcp_port, *ADMIN) as a:
        yield a


class Client:
    """A paho client with blocking helpers; MQTT 3.1.1, no automatic reconnect."""

    def __init__(self, broker: BrokerHandle, username: str, password: str, websocket: bool = False) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=uid("t-"),
            protocol=mqtt.MQTTv311,
            transport="websockets" if websocket else "tcp",
            reconnect_on_failure=False,
        )
        if websocket:
            self.client.ws_set_options(path=broker.ws_path)
        self.client.username_pw_set(username, password)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[int] = queue.Queue()
        self.subacks: dict[int, list[int]] = {}
        self.suback_event = threading.Condition()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc.value)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_subscribe = self._on_subscribe
        self.port = broker.ws_port if websocket else broker.tcp_port
        self.host = broker.host

    def _on_subscribe(self, _c: object, _u: object, mid: int, codes: list, _p: object) -> None:
        with self.suback_event:
            self.subacks[mid] = [c.value for c in codes]
            self.suback_event.notify_all()

    def connect(self, timeout: float = 5.0) -> int:
        """Return the CONNACK code (0 = accepted)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=timeout)

    def subscribe(self, flt: str, qos: int = 1) -> int:
        """Return the SUBACK code for ``flt`` (the granted QoS, or 0x80 = refused)."""
        _rc, mid = self.client.subscribe(flt, qos=qos)
        with self.suback_event:
            assert self.suback_event.wait_for(lambda: mid in self.subacks, 5)
            return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def expect(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if got == (topic, payload):
                return
        raise AssertionError(f"{topic!r} {payload!r} not received")

    def received(self, within: float = 1.0) -> list[tuple[str, bytes]]:
        time.sleep(within)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connect(broker: BrokerHandle) -> Iterator:
    """``connect(username, password, websocket=False)`` → a connected Client, closed afterwards."""
    clients: list[Client] = []

    def _connect(username: str, password: str, websocket: bool = False) -> Client:
        client = Client(broker, username, password, websocket)
        clients.append(client)
        rc = client.connect()
        assert rc == 0, f"{username} refused: {rc}"
        return client

    yield _connect
    for c in clients:
        c.close()
