"""Agent test fixtures: a private mosquitto, an MQTT observer, and agents on temp dirs.

The tests talk to the agent only through the broker, exactly as the control plane does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from stellar_agent.agent import Agent
from stellar_agent.config import AgentConfig
from stellar_protocol import topics
from stellar_protocol.blueprint import load_catalogue
from stellar_protocol.messages import ServerSpec

from . import wire

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A private mosquitto on a free 127.0.0.1 port (never the system one on 1883).

    ``stop``/``start`` restart it on the same port and data dir, so with ``persistence``
    its sessions and queued QoS 1 messages survive, as on a production broker.
    """

    def __init__(self, workdir: Path, persistence: bool = False, extra: str = "") -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip("mosquitto is not installed")
        self.port = _free_port()
        self.conf = workdir / "mosquitto.conf"
        store = f"persistence true\npersistence_location {workdir}/\n" if persistence else "persistence false\n"
        if os.geteuid() == 0:  # as root mosquitto drops to user "mosquitto", who cannot write here
            store += "user root\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{store}{extra}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(self.address, timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto did not start: {err}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, which writes the persistence file."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    m = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield m.address
    m.stop()


class Observer:
    """Plays the control plane: publishes commands and records everything the node says."""

    def __init__(self, host: str, port: int, node_id: str, persistent: bool = False,
                 tls: dict[str, str] | None = None) -> None:
        self.node_id = node_id
        self.messages: list[tuple[str, bytes, bool]] = []
        self.invalid: list[str] = []  # messages that do not match docs/asyncapi.yaml
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(0.05, 0.2)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topics.node_filter(node_id), qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(10), "observer could not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # what the agent sent must match the document; commands are checked when sent
        is_agent = topics.channel(topics.parse(msg.topic).kind).sender == "agent"
        errors = wire.problems(msg.topic, msg.payload) if is_agent else []
        with self._cond:
            self.invalid.extend(errors)
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # ---- sending ----------------------------------------------------------------
    def send(self, command: dict[str, Any] | bytes) -> str | None:
        """Publish a command (dict filled with id/ts/v if missing); returns its id."""
        if isinstance(command, bytes):
            payload, cid = command, None
        else:
            command = {"v": 1, "id": uuid.uuid4().hex, "ts": time.time(), **command}
            payload, cid = json.dumps(command).encode(), command["id"]
            topic = topics.node_commands(self.node_id)
            assert not wire.problems(topic, payload), wire.problems(topic, payload)  # well-formed
        self.client.publish(topics.node_commands(self.node_id), payload, qos=1).wait_for_publish(5)
        return cid

    # ---- reading ----------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out waiting for {what or predicate}; states={self.states()} "
                        f"console={self.console_lines()[-20:]} acks={self.acks()}"
                    )
                self._cond.wait(min(left, 0.2))

    def _json(self, kind: str, server_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for topic, payload, _ in list(self.messages):
            parsed = topics.parse(topic)
            if parsed.kind == kind and (server_id is None or parsed.server_id == server_id) and payload:
                out.append(json.loads(payload))
        return out

    def acks(self) -> list[dict[str, Any]]:
        return self._json("ack")

    def acks_for(self, command_id: str) -> list[dict[str, Any]]:
        return [a for a in self.acks() if a["id"] == command_id]

    def ack(self, command_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(lambda: (self.acks_for(command_id) or [None])[0], timeout, f"ack {command_id}")

    def states(self, server_id: str | None = None) -> list[dict[str, Any]]:
        return self._json("state", server_id)

    def state_names(self, server_id: str | None = None) -> list[str]:
        return [s["state"] for s in self.states(server_id)]

    def wait_state(self, state: str, server_id: str | None = None, timeout: float = 20.0, after: int = 0) -> dict:
        def find() -> dict | None:
            matches = [s for s in self.states(server_id)[after:] if s["state"] == state]
            return matches[0] if matches else None

        return self.wait_for(find, timeout, f"state {state}")

    def consoles(self, server_id: str | None = None) -> list[dict[str, Any]]:
        return self._json("console", server_id)

    def console_lines(self, server_id: str | None = None, source: str | None = None) -> list[str]:
        return [
            line
            for m in self.consoles(server_id)
            if source is None or m.get("source", "server") == source
            for line in m["lines"]
        ]

    def wait_line(self, text: str, timeout: float = 20.0, source: str | None = None) -> str:
        return self.wait_for(
            lambda: next((ln for ln in self.console_lines(source=source) if text in ln), None),
            timeout,
            f"console line {text!r}",
        )

    def node_status(self) -> list[dict[str, Any]]:
        return self._json("status")

    def stats(self, server_id: str | None = None) -> list[dict[str, Any]]:
        return self._json("stats", server_id)


def demo_spec(server_id: str) -> ServerSpec:
    return load_catalogue(REPO / "blueprints")["demo"].to_spec(server_id, {"SERVER_NAME": "Test"})


def remove_node_containers(node_id: str) -> None:
    try:
        import docker

        client = docker.from_env(timeout=30)
    except Exception:
        return
    try:
        for container in client.containers.list(all=True, filters={"label": f"stellar.node={node_id}"}):
            container.remove(force=True)
        for network in client.networks.list(filters={"label": f"stellar.node={node_id}"}):
            network.remove()  # each server's own network (runtime/network.py)
    finally:
        client.close()


class Harness:
    """One node: config, a running Agent and an Observer on the same broker."""

    def __init__(self, broker: tuple[str, int], runtime: str, data_dir: Path,
                 observer: dict[str, Any] | None = None, **config: Any) -> None:
        self.node_id = f"t{uuid.uuid4().hex[:10]}"
        self.config = AgentConfig(
            node_id=self.node_id,
            broker_host=broker[0],
            broker_port=broker[1],
            data_dir=data_dir,
            runtime=runtime,  # type: ignore[arg-type]
            **{"stop_timeout_s": 10, "console_batch_ms": 30, "backlog_lines": 50, **config},
        )
        self.observer = Observer(*broker, self.node_id, **(observer or {}))
        self.agent: Agent | None = None

    def view(self, server_id: str, seconds: float = 600) -> str:
        """Play the control plane minting a viewer grant (the cost rule needs one for console)."""
        cid = self.observer.send({"type": "viewer.grant", "server_id": server_id, "until": time.time() + seconds})
        assert cid and self.observer.ack(cid)["ok"]
        return cid

    def start_agent(self, wait: bool = True) -> Agent:
        self.agent = Agent(self.config)
        self.agent.start()
        if wait:
            assert self.agent.wait_connected(10), "agent did not connect"
        return self.agent

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def install(self, server_id: str, spec: ServerSpec | None = None) -> str:
        spec = spec or demo_spec(server_id)
        cid = self.observer.send({"type": "server.install", "spec": spec.model_dump(mode="json")})
        assert cid
        return cid

    def power(self, server_id: str, action: str) -> str:
        cid = self.observer.send({"type": "server.power", "server_id": server_id, "action": action})
        assert cid
        return cid

    def console(self, server_id: str, line: str) -> str:
        cid = self.observer.send({"type": "server.command", "server_id": server_id, "line": line})
        assert cid
        return cid


def _docker_ready() -> bool:
    from stellar.images import docker_available

    return docker_available()


@pytest.fixture(scope="session")
def demo_image() -> str:
    if not _docker_ready():
        pytest.skip("no Docker engine")
    from stellar.images import ensure_demo_image

    return ensure_demo_image(progress=lambda _msg: None)


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "process"])
def runtime_name(request: pytest.FixtureRequest) -> str:
    """Each behavioural test runs on both runtimes; Docker ones carry the docker mark."""
    if request.param == "docker":
        request.getfixturevalue("demo_image")
    return request.param


@pytest.fixture
def harness_factory(broker: tuple[str, int], tmp_path: Path) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def make(runtime: str, at: tuple[str, int] | None = None, observer: dict[str, Any] | None = None,
             **config: Any) -> Harness:
        h = Harness(at or broker, runtime, tmp_path / f"data-{len(made)}", observer, **config)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop_agent()
        h.observer.close()
        if h.config.runtime == "docker":
            remove_node_containers(h.node_id)
    invalid = [e for h in made for e in h.observer.invalid]
    assert not invalid, f"messages that do not match docs/asyncapi.yaml: {invalid[:5]}"


@pytest.fixture
def node(harness_factory: Callable[[str], Harness], runtime_name: str) -> Harness:
    h = harness_factory(runtime_name)
    h.start_agent()
    h.view("srv-demo")
    return h
