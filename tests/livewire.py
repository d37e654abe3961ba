"""Test helper: a browser-like MQTT/WebSocket viewer using a console grant from the API."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Viewer:
    def __init__(self, grant: dict[str, Any], filters: list[str] | None = None) -> None:
        url = urlparse(grant["url"])
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.history: list[tuple[str, dict[str, Any]]] = []
        self.subacks: list[Any] = []
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.connect_rc: Any = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=grant["client_id"],
                                  transport="websockets", protocol=mqtt.MQTTv311)
        self.client.ws_set_options(path=url.path or "/mqtt")
        self.client.username_pw_set(grant["username"], grant["password"])
        self.filters = filters or list(grant["topics"].values())

        def on_connect(client, _u, _f, rc, _p=None):  # noqa: ANN001
            self.connect_rc = rc
            self._connected.set()
            if not rc.is_failure:
                client.subscribe([(f, 1) for f in self.filters])

        def on_subscribe(_c, _u, _mid, codes, _p=None):
            self.subacks.extend(codes)
            self._subscribed.set()

        def on_message(_c, _u, msg):
            try:
                self.messages.put((msg.topic, json.loads(msg.payload)))
            except ValueError:
                self.messages.put((msg.topic, {"raw": msg.payload.decode(errors="replace")}))

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = on_connect, on_subscribe, on_message
        self.client.connect(url.hostname, url.port)
        self.client.loop_start()

    def wait_subscribed(self, timeout: float = 10) -> None:
        assert self._subscribed.wait(timeout), f"not subscribed (connect rc={self.connect_rc})"

    def mark(self) -> int:
        """A position in the message history; later waits can look only after it."""
        self._drain()
        return len(self.history)

    def _drain(self) -> None:
        while True:
            try:
                self.history.append(self.messages.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, predicate, timeout: float = 30, since: int = 0) -> tuple[str, dict[str, Any]]:
        """The first message after ``since`` matching ``predicate``; messages are never consumed,
        so the order in which a test waits need not match the order they arrive in."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            self._drain()
            for topic, msg in self.history[checked:]:
                if predicate(topic, msg):
                    return topic, msg
            checked = max(checked, len(self.history))
            if time.monotonic() >= deadline:
                raise AssertionError(f"no matching message in {timeout}s; saw {self.history[since:][-10:]}")
            time.sleep(0.05)

    def console_line(self, text: str, timeout: float = 30, since: int = 0) -> None:
        self.wait_for(lambda t, m: t.endswith("/console") and any(text in x for x in m.get("lines", [])),
                      timeout, since)

    def state(self, state: str, timeout: float = 30, since: int = 0) -> dict[str, Any]:
        return self.wait_for(lambda t, m: t.endswith("/state") and m.get("state") == state, timeout, since)[1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_status(user, server_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the API until the server's stored status (fed by the event bridge) is ``status``."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = user.get(f"/servers/{server_id}").json()
        if last.get("status") == status:
            return last
        time.sleep(0.2)
    raise AssertionError(f"server {server_id} never reached {status}; last {last}")
