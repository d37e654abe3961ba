"""The node agent: one MQTT session to the broker, one ``Server`` per game server.

Commands arrive on the node's cmd topic (QoS 1, persistent MQTT 3.1.1 session, so commands
published while the agent was away are delivered when it returns). Each is validated,
de-duplicated by id (on disk, so a redelivery after a restart still runs once), queued on
its server's worker and acknowledged with its result. The retained node status is
"online" while connected; the broker's last will flips it to "offline" if we vanish.

The network loop is ours (not paho's): reconnects back off exponentially with jitter so
a broker restart does not meet every node of a fleet at the same instant. A ticker
publishes stats of viewed servers, the low-rate heartbeat and enforces disk limits.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from stellar_protocol import topics
from stellar_protocol.messages import (
    Ack,
    BacklogCommand,
    BackupCommand,
    BackupEvent,
    ConsoleCommand,
    DeleteCommand,
    FileCommand,
    InstallCommand,
    NodeStatus,
    PowerCommand,
    ProtocolError,
    ReinstallCommand,
    Reply,
    RestoreCommand,
    ServerSpec,
    UpdateCommand,
    ViewerCommand,
    decode_command,
    encode,
)

from . import __version__, backups, filesystem
from .config import AgentConfig
from .runtime import Runtime, select_runtime
from .server import Server, ServerError
from .storage import CommandLog, read_json, write_json

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


class Backoff:
    """Exponential backoff with jitter: attempt n waits uniform(base, min(cap, base * 2**n))."""

    def __init__(self, base: float, cap: float, rng: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.attempt, self._rng = base, max(cap, base), 0, rng

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self.base + (ceiling - self.base) * self._rng()

    def reset(self) -> None:
        self.attempt = 0


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
        self._stopping = threading.Event()
        self._started = False
        self._started_at = time.monotonic()
        self._sub_mid = -1
        # server id -> latest grant expiry (epoch); on disk so a restarted agent keeps streaming
        self._viewers_path = config.data_dir / "viewers.json"
        saved = read_json(self._viewers_path)
        pairs = saved.items() if isinstance(saved, dict) else []
        self._viewers: dict[str, float] = {str(k): float(v) for k, v in pairs if isinstance(v, int | float)}
        self._offline_console = 0  # console messages queued since the connection dropped
        self._threads: list[threading.Thread] = []
        self._stats_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stats")
        # file manager and backup uploads: off the servers' queues, so a listing never waits on a stop
        self._files_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="files")
        self.backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._session = time.time()  # this connection's stamp; its last will carries it too
        self.connects = 0  # successful CONNACKs, for tests and diagnostics
        self.client = self._make_client()

    # ---- MQTT plumbing ----------------------------------------------------------------
    def _status(self, status: str) -> bytes:
        """The retained node status; ``online`` doubles as the heartbeat with every server's state."""
        online = status == "online"
        return encode(
            NodeStatus(
                status=status,  # type: ignore[arg-type]
                runtime=self.runtime.name,
                isolated=self.runtime.isolated,
                agent_version=__version__,
                servers={s.id: s.state for s in self._all_servers()} if online else None,  # type: ignore[misc]
                uptime_s=round(time.monotonic() - self._started_at, 1) if online else None,
                heartbeat_s=self.config.heartbeat_s if online else None,
                session=self._session,
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
            reconnect_on_failure=False,  # _network() reconnects, with jitter
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
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Thread-safe publish; QoS 1 messages are queued by paho while disconnected.

        Console batches are the one unbounded producer, so while disconnected at most
        ``offline_console_limit`` of them are kept; states and acks are always kept.
        """
        if not self._connected.is_set() and topic.endswith("/console"):
            self._offline_console += 1
            if self._offline_console > self.config.offline_console_limit:
                if self._offline_console == self.config.offline_console_limit + 1:
                    log.warning("broker unreachable: dropping console output beyond %d messages",
                                self.config.offline_console_limit)
                return
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def viewed(self, server_id: str) -> bool:
        """Whether a viewer holds a live grant for the server (the cost rule)."""
        return time.time() < self._viewers.get(server_id, 0.0)

    def _network(self) -> None:
        """Connect, run paho's loop, and on any drop reconnect after a jittered backoff."""
        while not self._stopping.is_set():
            # A new session stamp per connection, with a will that names it, so the control
            # plane can tell this connection's death from an older one's.
            self._session = time.time()
            self.client.will_set(topics.node_status(self.node_id), self._status("offline"), qos=1, retain=True)
            try:
                self.client.reconnect()
            except OSError as exc:  # refused, unreachable, TLS failure (ssl.SSLError is an OSError)
                delay = self.backoff.next()
                log.warning("cannot reach broker %s:%s (%s); retrying in %.1fs",
                            self.config.broker_host, self.config.broker_port, exc, delay)
                self._stopping.wait(delay)
                continue
            while not self._stopping.is_set():
                if self.client.loop(timeout=0.5) != mqtt.MQTT_ERR_SUCCESS:
                    break
            self._connected.clear()
            if self._stopping.is_set():
                # drain what stop() queued (the offline status) before the socket closes
                for _ in range(10):
                    if self.client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                        break
                return
            delay = self.backoff.next()
            log.warning("connection to broker lost; reconnecting in %.1fs", delay)
            self._stopping.wait(delay)

    def _tick(self) -> None:
        """Stats every ``stats_interval_s`` (viewed servers), heartbeat, disk enforcement."""
        cfg = self.config
        now = time.monotonic()
        next_stats, next_beat, next_disk = now + cfg.stats_interval_s, now + cfg.heartbeat_s, now
        while not self._stopping.wait(max(min(next_stats, next_beat, next_disk) - time.monotonic(), 0.02)):
            now = time.monotonic()
            try:
                if now >= next_stats:
                    # Docker answers a stats call in up to ~1 s: sample servers in parallel
                    list(self._stats_pool.map(lambda server: server.publish_stats(), self._all_servers()))
                    next_stats = time.monotonic() + cfg.stats_interval_s
                if now >= next_beat:
                    next_beat = now + cfg.heartbeat_s
                    if self._connected.is_set():
                        self.publish(topics.node_status(self.node_id), self._status("online"), 1, True)
                if now >= next_disk:
                    next_disk = now + cfg.disk_check_interval_s
                    for server in self._all_servers():
                        server.check_disk()
            except Exception:  # the ticker must survive a bad sample or a vanished server
                log.exception("ticker")

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
        self.backoff.reset()
        self.connects += 1
        self._offline_console = 0
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
        # The control plane's trace header rides in the command: log it so this work joins that trace.
        log.info("command %s %s received trace=%s", cmd.id, cmd.type, cmd.trace_id or "-")
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
            log.info("command %s %s finished (%s) trace=%s", cmd.id, cmd.type, error or "ok", cmd.trace_id or "-")
            self._ack(cmd.id, error)

        if isinstance(cmd, ViewerCommand):
            # Not queued and not tied to an existing server: the grant may precede the install.
            with self._servers_lock:
                now = time.time()
                self._viewers = {k: v for k, v in self._viewers.items() if v > now}
                self._viewers[cmd.server_id] = max(self._viewers.get(cmd.server_id, 0.0), cmd.until)
                write_json(self._viewers_path, self._viewers)
            self._ack(cmd.id)
            return
        if isinstance(cmd, InstallCommand):
            with self._servers_lock:
                server = self.servers.get(cmd.spec.server_id)
                if server is None:
                    server = self.servers[cmd.spec.server_id] = self._new_server(cmd.spec)
                    server.save_spec()
            server.submit(lambda: server.install(cmd.spec), done)
            return
        target = cmd.spec.server_id if isinstance(cmd, UpdateCommand) else cmd.server_id
        with self._servers_lock:
            server = self.servers.get(target)
        if server is None:
            self._ack(cmd.id, f"unknown server {target}")
            return
        if isinstance(cmd, (FileCommand, BackupCommand, RestoreCommand)):
            self._dispatch_files(cmd, server)
            return
        if isinstance(cmd, PowerCommand):
            op = {"start": server.start, "stop": server.stop, "restart": server.restart, "kill": server.kill}
            server.submit(op[cmd.action], done)
        elif isinstance(cmd, ConsoleCommand):
            server.submit(lambda: server.send_command(cmd.line), done)
        elif isinstance(cmd, UpdateCommand):  # queued: applies after any operation sent before it
            server.submit(lambda: server.update(cmd.spec), done)
        elif isinstance(cmd, ReinstallCommand):
            server.submit(server.reinstall, done)
        elif isinstance(cmd, BacklogCommand):
            # Not queued: a viewer joining must not wait behind a 30 s stop.
            server.console.backlog()
            self._ack(cmd.id)
        elif isinstance(cmd, DeleteCommand):

            def deleted(error: str | None) -> None:
                if error is None:
                    with self._servers_lock:
                        self.servers.pop(cmd.server_id, None)
                    # The status lists this node's servers: say at once that this one is gone, so
                    # the control plane can finish a deletion without waiting for the heartbeat.
                    self.publish(topics.node_status(self.node_id), self._status("online"), 1, True)
                done(error)

            server.submit(server.delete, deleted)
        else:  # pragma: no cover - decode_command only yields the types above
            self._ack(cmd.id, f"unsupported command {type(cmd).__name__}")

    # ---- files and backups (issue 8) ------------------------------------------------------
    def _reply(self, command_id: str, result: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        code = getattr(error, "code", None) if error is not None else None
        msg = Reply(id=command_id, ok=error is None, result=result if error is None else None,
                    error=str(error)[:2048] if error is not None else None, code=code)
        self.publish(topics.node_replies(self.node_id), encode(msg), qos=1)

    @staticmethod
    def _free_bytes(server: Server) -> int:
        return max(server.spec.limits.disk_mb * 1024 * 1024 - server.disk_usage(max_age=2.0), 0)

    def _dispatch_files(self, cmd: Any, server: Server) -> None:
        """File commands answer on the reply topic; backups report on the server's backup topic."""
        if isinstance(cmd, FileCommand):

            def run_file() -> None:
                try:
                    result = filesystem.handle(server.dir, cmd, self._free_bytes(server))
                except filesystem.FileError as exc:
                    self._reply(cmd.id, error=exc)
                    self._ack(cmd.id, str(exc))
                    return
                except Exception as exc:
                    log.exception("file command %s failed", cmd.id)
                    self._reply(cmd.id, error=RuntimeError(f"internal error: {exc}"))
                    self._ack(cmd.id, f"internal error: {exc}")
                    return
                self._reply(cmd.id, result)
                self._ack(cmd.id)

            self._files_pool.submit(run_file)
            return
        topic = topics.server_backups(self.node_id, server.id)
        action = "create" if isinstance(cmd, BackupCommand) else "restore"

        def event(status: str, **kw: Any) -> None:
            self.publish(topic, encode(BackupEvent(backup_id=cmd.backup_id, action=action, status=status, **kw)), 1)

        last = [0.0]

        def progress(done: int) -> None:
            if time.monotonic() - last[0] >= 1.0:  # at most one progress event a second
                last[0] = time.monotonic()
                event("running", bytes=done)

        if isinstance(cmd, BackupCommand):

            def run_backup() -> None:
                try:
                    out = backups.create(server.dir, cmd, progress)
                except Exception as exc:
                    log.warning("backup %s failed: %s", cmd.backup_id, exc)
                    event("failed", error=str(exc)[:2048])
                    self._ack(cmd.id, str(exc))
                    return
                event("completed", bytes=out["size"], size=out["size"], sha256=out["sha256"], etags=out["etags"])
                self._ack(cmd.id)

            self._files_pool.submit(run_backup)
            return

        def run_restore() -> None:  # on the server's queue: no start can interleave
            if server.state != "offline" or self.runtime.is_running(server.id):
                raise ServerError(f"server is {server.state}; stop it before restoring a backup")
            try:
                out = backups.restore(server.dir, cmd, self.config.data_dir / "tmp", lambda: self._free_bytes(server),
                                      progress)
            except filesystem.FileError as exc:
                event("failed", error=str(exc)[:2048])
                raise ServerError(str(exc)) from None
            event("completed", bytes=out["size"], size=out["size"])

        server.submit(run_restore, lambda error: self._ack(cmd.id, error))

    def _new_server(self, spec: ServerSpec) -> Server:
        sid = spec.server_id
        return Server(spec, self.config, self.runtime, self.publish, viewed=lambda: self.viewed(sid))

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
        self._stopping.clear()
        self._load_servers()
        self.client.connect_async(self.config.broker_host, self.config.broker_port, keepalive=self.config.keepalive_s)
        self._threads = [
            threading.Thread(target=self._network, name="mqtt", daemon=True),
            threading.Thread(target=self._tick, name="ticker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
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
        self._stopping.set()
        self.client.disconnect()
        for thread in self._threads:
            thread.join(timeout=5)
        self._stats_pool.shutdown(wait=False)
        self._files_pool.shutdown(wait=False)
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
