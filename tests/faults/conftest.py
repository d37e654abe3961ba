"""Fault-test fixtures: a whole stack whose agent (and, when asked, API front) are separate
processes, so they can be SIGKILLed, SIGSTOPped and restarted, and whose broker can be
restarted on the same ports and data directory (its sessions and queued QoS 1 messages
persist, as on a production broker).

Select the suite with ``pytest -m faults``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import User, stack_options
from paho.mqtt.enums import CallbackAPIVersion
from stellar.devstack.stack import DevStack
from stellar_protocol import topics

AGENT_BIN = Path(sys.executable).parent / "stellar-agent"
CP_SERVER = Path(__file__).with_name("cp_server.py")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection tests (broker, agent, control plane, network)")


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            time.sleep(0.05)


class FaultStack(DevStack):
    """A DevStack whose agent runs as ``stellar-agent run --config FILE`` in its own process;
    with ``api_process`` the HTTP API runs in a child process too (``cp_server.py``)."""

    def __init__(self, *args: Any, api_process: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_process = api_process
        self.agent_proc: subprocess.Popen[bytes] | None = None
        self.api_proc: subprocess.Popen[bytes] | None = None
        self.agent_config = Path()

    # -- agent as a process -----------------------------------------------------------------
    def _start_agent(self, secrets_: dict[str, str]) -> None:
        if self.opts.runtime == "docker":
            from stellar.images import ensure_demo_image

            ensure_demo_image(progress=lambda _m: None)
        self.agent_config = self.opts.data_dir / "agent.json"
        self.agent_config.write_text(json.dumps({
            "node_id": self.opts.node_id, "broker_host": "127.0.0.1", "broker_port": self.broker.tcp_port,
            "broker_username": self.node_username, "broker_password": secrets_["node"],
            "data_dir": str(self.opts.data_dir / "node"), "runtime": self.opts.runtime,
            "stop_timeout_s": self.opts.stop_timeout_s, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
        }))
        self.start_agent_process()
        self._stops.append(self._stop_agent_process)
        self.wait_node("online", 30)

    def node_status(self) -> str:
        """The node's status as the control plane reports it (heartbeat age included)."""
        from chalicelib.services import nodes
        from chalicelib.store import get_store

        node = get_store().as_admin("fault test").get_node(self.opts.node_id)
        return nodes.effective_status(node)

    def wait_node(self, status: str, timeout: float) -> float:
        """Seconds until the node reads ``status``; AssertionError after ``timeout``."""
        started = time.monotonic()
        while self.node_status() != status:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"node not {status} after {timeout}s; agent log:\n{self.agent_log()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def start_agent_process(self) -> None:
        log = (self.opts.data_dir / "agent.log").open("ab")
        self.agent_proc = subprocess.Popen([str(AGENT_BIN), "run", "--config", str(self.agent_config)],
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def signal_agent(self, sig: int) -> None:
        assert self.agent_proc is not None
        os.kill(self.agent_proc.pid, sig)
        if sig == signal.SIGKILL:
            self.agent_proc.wait(10)

    def agent_log(self) -> str:
        path = self.opts.data_dir / "agent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _stop_agent_process(self) -> None:
        proc, self.agent_proc = self.agent_proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have left it stopped
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._remove_containers()

    # -- broker restart ---------------------------------------------------------------------
    def restart_broker(self, down_s: float = 0.5) -> None:
        """SIGTERM (Mosquitto writes its persistence file), wait, start again on the same ports."""
        from stellar.broker import start_broker

        old = self.broker
        old.stop()
        time.sleep(down_s)
        self.broker = start_broker(self.opts.data_dir / "broker", old.tcp_port, old.ws_port, "stellar-admin",
                                   self._secrets()["broker_admin"], prefer=self.opts.broker)
        self._stops[:] = [self.broker.stop if fn == old.stop else fn for fn in self._stops]

    # -- API front as a process -------------------------------------------------------------
    def _start_http(self) -> None:
        if not self.api_process:
            super()._start_http()
            return
        self.start_api_process()
        self._stops.append(self.kill_api_process)
        base = f"http://127.0.0.1:{self.opts.http_port}"
        self.urls = {"panel": f"{base}/", "api": f"{base}/api", "mqtt_ws": self.broker.ws_url,
                     "mqtt": f"tcp://127.0.0.1:{self.broker.tcp_port}", "aws": os.environ["AWS_ENDPOINT_URL"]}

    def start_api_process(self) -> None:
        log = (self.opts.data_dir / "api.log").open("ab")
        self.api_proc = subprocess.Popen([sys.executable, str(CP_SERVER), str(self.opts.http_port)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _wait_port(self.opts.http_port)

    def kill_api_process(self) -> None:
        proc, self.api_proc = self.api_proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[Callable[..., FaultStack]]:
    """Factory: ``fault_stack(runtime=..., api_process=...)`` starts one stack for this test."""
    made: list[FaultStack] = []

    def make(runtime: str = "process", api_process: bool = False) -> FaultStack:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        opts = stack_options(tmp_path / f"s{len(made)}", broker="mosquitto", runtime=runtime)
        stack = FaultStack(opts, api_process=api_process)
        made.append(stack)
        return stack.start()

    yield make
    for stack in made:
        stack.stop()


def user(stack: DevStack, admin: bool = False) -> User:
    return User(stack, f"u-{uuid.uuid4().hex[:8]}@test.local", "Passw0rdPassw0rd", admin=admin)


class Recorder:
    """The control plane's view of a node, over TCP as the admin, with a *persistent* session:
    messages published while it is disconnected (a broker restart) are queued for it, so it
    sees everything the agent really published (console, acks, states)."""

    def __init__(self, stack: DevStack) -> None:
        self.node_id = stack.opts.node_id
        self.lock = threading.Lock()
        self.console: list[str] = []
        self.acks: list[dict[str, Any]] = []
        self.states: list[tuple[str, str]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.username_pw_set("stellar-admin", stack._secrets()["broker_admin"])
        self.client.reconnect_delay_set(0.1, 0.5)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_a: c.subscribe(topics.node_filter(self.node_id), qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", stack.broker.tcp_port)
        self.client.loop_start()
        assert subscribed.wait(10), "recorder could not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        where = topics.parse(msg.topic)
        if not msg.payload:
            return
        data = json.loads(msg.payload)
        with self.lock:
            if where.kind == "console":
                self.console.extend(data.get("lines", []))
            elif where.kind == "ack":
                self.acks.append(data)
            elif where.kind == "state":
                self.states.append((where.server_id or "", data["state"]))

    def lines_with(self, text: str) -> list[str]:
        with self.lock:
            return [ln for ln in self.console if text in ln]

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def create_and_start(owner: User, name: str = "Fault") -> str:
    """A demo server through the API, installed and running."""
    from livewire import wait_status

    r = owner.post("/servers", {"name": name, "blueprint_id": "demo", "location_id": "local",
                                "variables": {"SERVER_NAME": "Fault"}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    wait_status(owner, sid, "offline", 90)
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    wait_status(owner, sid, "running", 60)
    return str(sid)


def post_retrying(owner: User, path: str, body: object, timeout: float = 20.0) -> Any:
    """POST until it is accepted: right after a broker restart the API's own connection may
    still be reconnecting (503 node_unreachable), which a client is told to retry."""
    deadline = time.monotonic() + timeout
    while True:
        r = owner.post(path, body)
        if r.status_code < 300 or r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)
