"""The node agent: one MQTT session to the broker, one ``Server`` per game server.

Commands arrive on the node's cmd topic (QoS 1, persistent MQTT v5 session, so commands
published while the agent was away are delivered when it returns). Each is validated,
de-duplicated by id (on disk, so a redelivery after a restart still runs once), queued on
its server's worker and acknowledged with its result. The retained node status is
"online" while connected; the broker's last will flips it to "offline" if we vanish.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from stellar_protocol import topics
from stellar_protocol.messages import (
    Ack,
    BacklogCommand,
    ConsoleCommand,
    DeleteCommand,
    InstallCommand,
    NodeStatus,
    PowerCommand,
    ProtocolError,
    ServerSpec,
    decode_command,
    encode,
)

from . import __version__
from .config import AgentConfig
from .runtime import Runtime, select_runtime
from .server import Server
from .storage import CommandLog, read_json

log = logging.getLogger(__name__)

_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


def _salvage_id(payload: bytes) -> str | None:
    """The ``id`` of an invalid command, if one can be read, so the error can be acked."""
    import re

    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and re.match(_ID_PATTERN, value) else None


class Agent:
    """A node agent; ``start()`` returns at once, work happens on background threads."""

    def __init__(self, config: AgentConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.node_id = config.node_id
        self.runtime = runtime or select_runtime(config)
        self.servers: dict[str, Server] = {}
        self._servers_lock = threading.Lock()
        self._commands = CommandLog(config.data_dir / "commands.log")
        self._connected = threading.Event()
        self._started = False
        self._sub_mid = -1
        self.client = self._make_client()

    # ---- MQTT plumbing ----------------------------------------------------------------
    def _status(self, status: str) -> bytes:
        return encode(
            NodeStatus(
                status=status,  # type: ignore[arg-type]
                runtime=self.runtime.name,
                isolated=self.runtime.isolated,
                agent_version=__version__,
            )
        )

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.node_id,
            # MQTT 3.1.1 with a persistent session: spoken alike by Mosquitto, the embedded
            # broker and AWS IoT Core; queued QoS 1 commands survive reconnects.
            protocol=mqtt.MQTTv311,
            clean_session=False,
            reconnect_on_failure=True,
        )
        if cfg.broker_username is not None:
            client.username_pw_set(cfg.broker_username, cfg.broker_password)
        if cfg.broker_tls:
            client.tls_set(
                ca_certs=str(cfg.broker_ca) if cfg.broker_ca else None,
                certfile=str(cfg.broker_cert) if cfg.broker_cert else None,
                keyfile=str(cfg.broker_key) if cfg.broker_key else None,
            )
        client.will_set(topics.node_status(cfg.node_id), self._status("offline"), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Thread-safe publish; QoS 1 messages are queued by paho while disconnected."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info(
            "connected to %s:%s (session present: %s)",
            self.config.broker_host,
            self.config.broker_port,
            getattr(flags, "session_present", None),
        )
        client.publish(topics.node_status(self.node_id), self._status("online"), qos=1, retain=True)
        self._sub_mid = client.subscribe(topics.node_commands(self.node_id), qos=1)[1]
        for server in self._all_servers():  # reconcile: the broker may hold stale states
            server.publish_state()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        """Ready only once the broker confirmed the cmd subscription (no command is missed)."""
        if mid != self._sub_mid:
            return
        if any(r.is_failure for r in reasons):
            log.error("broker refused the command subscription: %s", reasons)
            return
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if self._started:
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until connected and subscribed to the node's commands."""
        return self._connected.wait(timeout)

    # ---- commands -----------------------------------------------------------------
    def _ack(self, command_id: str, error: str | None = None, duplicate: bool = False) -> None:
        ack = Ack(id=command_id, ok=error is None, error=error[:2048] if error else None, duplicate=duplicate)
        self.publish(topics.node_acks(self.node_id), encode(ack), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            cmd = decode_command(msg.payload)
        except ProtocolError as exc:
            command_id = _salvage_id(msg.payload)
            log.warning("refused command %s: %s", command_id or "(no id)", exc)
            if command_id:
                self._ack(command_id, str(exc))
            return
        if not self._commands.remember(cmd.id):
            log.info("duplicate command %s ignored", cmd.id)
            self._ack(cmd.id, duplicate=True)
            return
        try:
            self._dispatch(cmd)
        except Exception as exc:
            log.exception("command %s failed to dispatch", cmd.id)
            self._ack(cmd.id, f"internal error: {exc}")

    def _all_servers(self) -> list[Server]:
        with self._servers_lock:
            return list(self.servers.values())

    def _dispatch(self, cmd: Any) -> None:
        def done(error: str | None) -> None:
            self._ack(cmd.id, error)

        if isinstance(cmd, InstallCommand):
            with self._servers_lock:
                server = self.servers.get(cmd.spec.server_id)
                if server is None:
                    server = self.servers[cmd.spec.server_id] = self._new_server(cmd.spec)
                    server.save_spec()
            server.submit(lambda: server.install(cmd.spec), done)
            return
        with self._servers_lock:
            server = self.servers.get(cmd.server_id)
        if server is None:
            self._ack(cmd.id, f"unknown server {cmd.server_id}")
            return
        if isinstance(cmd, PowerCommand):
            op = {"start": server.start, "stop": server.stop, "restart": server.restart, "kill": server.kill}
            server.submit(op[cmd.action], done)
        elif isinstance(cmd, ConsoleCommand):
            server.submit(lambda: server.send_command(cmd.line), done)
        elif isinstance(cmd, BacklogCommand):
            # Not queued: a viewer joining must not wait behind a 30 s stop.
            server.console.backlog()
            self._ack(cmd.id)
        elif isinstance(cmd, DeleteCommand):

            def deleted(error: str | None) -> None:
                if error is None:
                    with self._servers_lock:
                        self.servers.pop(cmd.server_id, None)
                done(error)

            server.submit(server.delete, deleted)
        else:  # pragma: no cover - decode_command only yields the types above
            self._ack(cmd.id, f"unsupported command {type(cmd).__name__}")

    def _new_server(self, spec: ServerSpec) -> Server:
        return Server(spec, self.config, self.runtime, self.publish)

    # ---- lifecycle ----------------------------------------------------------------
    def _load_servers(self) -> None:
        """Recreate a ``Server`` for every saved spec and re-attach to live instances."""
        for path in sorted(self.config.servers_dir.glob("*.json")):
            raw = read_json(path)
            try:
                spec = ServerSpec.model_validate(raw)
            except Exception as exc:
                log.error("ignoring unreadable server record %s: %s", path, exc)
                continue
            server = self._new_server(spec)
            with self._servers_lock:
                self.servers[spec.server_id] = server
            server.restore()

    def start(self) -> None:
        """Load servers, re-attach, and connect in the background (returns immediately)."""
        for sub in (self.config.servers_dir, self.config.volumes_dir):
            sub.mkdir(parents=True, exist_ok=True)
        self._started = True
        self._load_servers()
        self.client.connect_async(self.config.broker_host, self.config.broker_port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        log.info(
            "agent %s started (runtime %s%s)",
            self.node_id,
            self.runtime.name,
            "" if self.runtime.isolated else ", UNISOLATED",
        )

    def stop_all_servers(self) -> None:
        """Stop every game server through its own queue and wait (used when `stellar dev` exits)."""
        pending = []
        for server in self._all_servers():
            done = threading.Event()
            server.submit(server.stop, lambda _error, d=done: d.set())
            pending.append(done)
        for done in pending:
            done.wait(self.config.stop_timeout_s + 10)

    def stop(self) -> None:
        """Disconnect cleanly and say offline; Docker game containers keep running."""
        if not self._started:
            return
        self._started = False
        for server in self._all_servers():
            server.close()
        self.runtime.close()
        if self._connected.is_set():
            info = self.client.publish(topics.node_status(self.node_id), self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=5)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then stop cleanly."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
