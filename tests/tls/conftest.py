"""Fixtures: a local CA and a Mosquitto with an mTLS listener backed by it (one per module)."""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from chalicelib.broker import DynsecAdmin
from stellar.broker import BrokerHandle, mosquitto, start_broker
from stellar.pki import LocalCA

ADMIN = ("stellar-admin", "admin-secret-pw")
HOST = "127.0.0.1"

needs_mosquitto = pytest.mark.skipif(mosquitto.find_binary() is None, reason="no mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(data_dir: Path, ca: LocalCA) -> BrokerHandle:
    return start_broker(data_dir, free_port(), free_port(), *ADMIN, prefer="mosquitto", tls_port=free_port(), pki=ca)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca") / "ca")


@pytest.fixture(scope="module")
def broker(ca: LocalCA) -> Iterator[BrokerHandle]:
    """Data dir outside pytest's 0700 tree, so as root Mosquitto really drops to its own user
    and must read the TLS files (and the reloaded CRL) with that user's rights."""
    with tempfile.TemporaryDirectory(prefix="stellar-mtls-") as tmp:
        os.chmod(tmp, 0o711)
        handle = start(Path(tmp) / "broker", ca)
        yield handle
        handle.stop()


@pytest.fixture
def admin(broker: BrokerHandle) -> Iterator[DynsecAdmin]:
    with DynsecAdmin(broker.host, broker.tcp_port, *ADMIN) as a:
        yield a


class CertClient:
    """An agent-shaped paho client: MQTT 3.1.1, TLS with a client certificate, no password."""

    def __init__(self, port: int, ca: Path, cert: Path | None = None, key: Path | None = None,
                 client_id: str | None = None) -> None:
        self.port = port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        self.client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
        self.outcome: list[str] = []
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.outcome.append("" if rc == 0 else f"CONNACK {rc}")
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.outcome.append(f"disconnected: {rc}")
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put([c.value for c in codes])

    def attempt(self, timeout: float = 5.0) -> str:
        """Connect; "" when the broker accepted us, else why not (TLS error, CONNACK code, drop)."""
        try:
            self.client.connect(HOST, self.port, keepalive=10)
            deadline = time.monotonic() + timeout
            while not self.outcome and time.monotonic() < deadline:
                rc = self.client.loop(timeout=0.1)
                if rc != mqtt.MQTT_ERR_SUCCESS and not self.outcome:
                    return f"loop: {mqtt.error_string(rc)}"
        except OSError as exc:  # ssl.SSLError included
            return f"{type(exc).__name__}: {exc}"
        if not self.outcome:
            return "no CONNACK"
        if self.outcome[0] == "":
            self.client.loop_start()
        return self.outcome[0]

    def subscribe(self, flt: str) -> int:
        self.client.subscribe(flt, qos=1)
        return self.subacks.get(timeout=5)[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


@pytest.fixture
def cert_client(broker: BrokerHandle) -> Iterator:
    """``cert_client(ca_path, cert=None, key=None)`` → a CertClient closed afterwards."""
    made: list[CertClient] = []

    def _make(ca: Path, cert: Path | None = None, key: Path | None = None, client_id: str | None = None) -> CertClient:
        assert broker.tls_port is not None
        c = CertClient(broker.tls_port, ca, cert, key, client_id)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.close()
