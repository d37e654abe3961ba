"""What ``start_broker`` returns, and the readiness probe both broker kinds share."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import paho.mqtt.client as mqtt

# Browsers use mqtt.js, which requests "/mqtt" by default. Mosquitto (libwebsockets) and
# the embedded broker (websockets) both ignore the request path, so "/" works as well.
WS_PATH = "/mqtt"


class BrokerStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its log."""


@dataclass
class BrokerHandle:
    """A running local broker. ``stop()`` is idempotent and leaves nothing running."""

    kind: Literal["mosquitto", "embedded"]
    host: str
    tcp_port: int
    ws_port: int
    ws_path: str = WS_PATH
    pid: int | None = None
    tls_port: int | None = None  # mTLS listener (client certificates), Mosquitto only
    _stopper: Callable[[], None] | None = field(default=None, repr=False)
    _crl_reloader: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}{self.ws_path}"

    def reload_crl(self) -> None:
        """Make the mTLS listener refuse newly revoked certificates (after ``LocalCA.revoke``)."""
        if self._crl_reloader is None:
            raise RuntimeError("this broker has no mTLS listener")
        self._crl_reloader()

    def stop(self) -> None:
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe(host: str, port: int, username: str, password: str, websocket: bool, timeout: float = 2.0) -> str:
    """One authenticated MQTT CONNECT; returns "" on success or the reason it failed."""
    transport = "websockets" if websocket else "tcp"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"stellar-probe-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
        transport=transport,
    )
    if websocket:
        client.ws_set_options(path=WS_PATH)
    client.username_pw_set(username, password)
    result: list[str] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: result.append("" if rc == 0 else str(rc))
    try:
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while not result and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        if result and result[0] == "":
            client.disconnect()
        return result[0] if result else "no CONNACK"
    except OSError as exc:
        return str(exc)
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()


def wait_ready(
    host: str,
    tcp_port: int,
    ws_port: int,
    username: str,
    password: str,
    timeout: float,
    alive: Callable[[], bool],
    log_tail: Callable[[], str],
) -> None:
    """Block until the admin can log in over TCP and WebSocket, or raise BrokerStartError."""
    deadline = time.monotonic() + timeout
    last = "not tried"
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerStartError(f"broker exited during start-up\n--- log tail ---\n{log_tail()}")
        last = probe(host, tcp_port, username, password, websocket=False)
        if not last:
            last = probe(host, ws_port, username, password, websocket=True)
            if not last:
                return
            last = f"websocket: {last}"
        time.sleep(0.1)
    raise BrokerStartError(f"broker not ready after {timeout:.0f}s ({last})\n--- log tail ---\n{log_tail()}")


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
