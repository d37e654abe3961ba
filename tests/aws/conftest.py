"""AWS deployment suite: one local stack for the package, with tracing on and a fake X-Ray daemon.

The fake daemon is a UDP socket on 127.0.0.1 (what ``AWS_XRAY_DAEMON_ADDRESS`` points the SDK
at); every datagram is ``{"format":"json","version":1}\\n{segment}``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import User, stack_options
from stellar.devstack.stack import DevStack


class XrayDaemon:
    """Collects the segments the SDK emits; ``wait_for`` polls them with a deadline."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.segments: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            header, _, body = data.decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            self.segments.append(json.loads(body))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seg in list(self.segments):
                if pred(seg):
                    return seg
            time.sleep(0.05)
        raise AssertionError(f"no matching segment among {[s.get('name') for s in self.segments]}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture(scope="package")
def xray() -> Iterator[XrayDaemon]:
    from chalicelib import tracing

    daemon = XrayDaemon()
    saved = {k: os.environ.get(k) for k in ("AWS_XRAY_DAEMON_ADDRESS", "STELLAR_TRACE_SAMPLING")}
    os.environ.update(AWS_XRAY_DAEMON_ADDRESS=daemon.address, STELLAR_TRACE_SAMPLING="0")
    tracing.reset()
    yield daemon
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    tracing.reset()
    daemon.close()


@pytest.fixture(scope="package")
def aws_stack(tmp_path_factory: pytest.TempPathFactory, xray: XrayDaemon) -> Iterator[DevStack]:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with DevStack(stack_options(tmp_path_factory.mktemp("aws"))) as st:
        yield st


@pytest.fixture(scope="package")
def aws_owner(aws_stack: DevStack) -> User:
    import uuid

    return User(aws_stack, f"aws-{uuid.uuid4().hex[:8]}@test.local", "Passw0rdPassw0rd")


@pytest.fixture(scope="package")
def aws_server(aws_owner: User) -> dict[str, Any]:
    from livewire import wait_status

    r = aws_owner.post("/servers", {"name": "Traced", "blueprint_id": "demo", "location_id": "local",
                                    "variables": {"SERVER_NAME": "Traced"}})
    assert r.status_code == 201, r.text
    server = r.json()
    wait_status(aws_owner, server["id"], "offline")
    return server
