"""Payload schemas for every MQTT message: the single source of truth for the wire format.

Payloads are versioned JSON (``v``). Unknown fields and bad values are rejected by
pydantic (``extra="forbid"``), and commands older than ``MAX_COMMAND_AGE`` are refused so
a message replayed from a broker's queue long after the fact is never executed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .configpatch import ConfigFile

VERSION = 1
MAX_COMMAND_AGE = 600.0  # seconds; a persistent session may hold commands this long
MAX_CLOCK_SKEW = 60.0

ServerState = Literal["installing", "install_failed", "offline", "starting", "running", "stopping"]
PowerAction = Literal["start", "stop", "restart", "kill"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- what a server is, as the agent needs it ----------------------------------------


class StopSpec(Strict):
    """How to ask the game to stop: a console command or a signal (never SIGKILL first)."""

    type: Literal["command", "signal"]
    value: str = Field(min_length=1, max_length=256)


class InstallSpec(Strict):
    image: str = Field(min_length=1, max_length=256)
    entrypoint: str = Field(default="sh", max_length=64)
    script: str = Field(max_length=256_000)


class Limits(Strict):
    """Enforced by the runtime (memory, swap, CPU, pids) and by the agent (disk, see README)."""

    memory_mb: int = Field(ge=16, le=1_048_576)
    # Swap on top of memory, as Wings: 0 = none, -1 = unlimited.
    swap_mb: int = Field(default=0, ge=-1, le=1_048_576)
    cpu_percent: int = Field(default=100, ge=1, le=100_000)
    disk_mb: int = Field(default=1024, ge=1)
    pids: int = Field(default=512, ge=16, le=65_536)


class Port(Strict):
    ip: str = "0.0.0.0"
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class ServerSpec(Strict):
    """Everything the agent needs to create and run one game server."""

    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    image: str = Field(min_length=1, max_length=256)
    # Shell text run *inside* the container; blueprint placeholders were turned into
    # ${ENV} references by the control plane, so user values are never spliced in as code.
    startup: str = Field(min_length=1, max_length=8192)
    environment: dict[str, str] = Field(default_factory=dict)
    stop: StopSpec
    done: list[str] = Field(default_factory=list, max_length=32)
    done_regex: bool = False
    install: InstallSpec | None = None
    limits: Limits
    ports: list[Port] = Field(default_factory=list, max_length=64)
    read_only_root: bool = False
    # Blueprint config-file patches, applied by the agent before each start.
    config_files: list[ConfigFile] = Field(default_factory=list, max_length=64)


# ---- commands: control plane -> agent ------------------------------------------------


class _CommandBase(Strict):
    v: Literal[1] = VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_-]{8,64}$")
    ts: float = Field(default_factory=time.time)
    trace_id: str | None = Field(default=None, max_length=128)


class InstallCommand(_CommandBase):
    type: Literal["server.install"] = "server.install"
    spec: ServerSpec


class UpdateCommand(_CommandBase):
    """A new spec for an installed server (variables, image, ports, blueprint): persisted by the
    agent and used from the next start; a running server keeps running (no restart forced)."""

    type: Literal["server.update"] = "server.update"
    spec: ServerSpec


class ReinstallCommand(_CommandBase):
    """Stop the server if it runs, re-run its install script, and leave it offline."""

    type: Literal["server.reinstall"] = "server.reinstall"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class PowerCommand(_CommandBase):
    type: Literal["server.power"] = "server.power"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    action: PowerAction


class ConsoleCommand(_CommandBase):
    type: Literal["server.command"] = "server.command"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    line: str = Field(min_length=1, max_length=4096, pattern=r"^[^\r\n\x00]*$")


class BacklogCommand(_CommandBase):
    """A viewer has just subscribed: republish the console ring buffer."""

    type: Literal["console.backlog"] = "console.backlog"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class DeleteCommand(_CommandBase):
    type: Literal["server.delete"] = "server.delete"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class ViewerCommand(_CommandBase):
    """A viewer holds a grant for this server until ``until`` (epoch seconds).

    The cost rule: console and stats are published only while some grant is live. The
    control plane sends this whenever it mints a grant; the agent keeps the latest expiry.
    """

    type: Literal["viewer.grant"] = "viewer.grant"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    until: float = Field(gt=0)


FileOp = Literal["list", "stat", "read", "write", "mkdir", "rename", "copy", "delete", "chmod", "compress",
                 "decompress", "pull", "push"]


class FileCommand(_CommandBase):
    """A file-manager request for one server; answered with a ``Reply`` on the node's reply topic.

    Paths are relative to the server's root (``/`` is ``/home/container`` in the container);
    the agent confines them with fd-relative resolution, never string checks. ``deny`` is the
    blueprint's file deny-list. ``url`` is a presigned S3 URL: ``pull`` GETs it into ``path``,
    ``push`` PUTs the file at ``path`` to it (large transfers never ride on MQTT).
    """

    type: Literal["server.files"] = "server.files"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    op: FileOp
    path: str = Field(default="/", max_length=4096)
    target: str | None = Field(default=None, max_length=4096)
    paths: list[str] = Field(default_factory=list, max_length=1000)
    content_b64: str | None = Field(default=None, max_length=180_000)
    mode: int | None = Field(default=None, ge=0, le=0o7777)
    format: Literal["tar.gz", "zip"] | None = None
    after: str | None = Field(default=None, max_length=1024)
    limit: int = Field(default=200, ge=1, le=1000)
    url: str | None = Field(default=None, max_length=8192)
    deny: list[str] = Field(default_factory=list, max_length=256)


class BackupPart(Strict):
    number: int = Field(ge=1, le=10_000)
    url: str = Field(max_length=8192)


class BackupCommand(_CommandBase):
    """Create a backup: stream a tar.gz of the server's files into presigned multipart part URLs.

    The agent holds no S3 credentials: the control plane mints ``parts`` (each ``part_size``
    bytes but the last) and completes the upload itself from the ETags the agent reports
    in its final ``BackupEvent``.
    """

    type: Literal["backup.create"] = "backup.create"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    backup_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    part_size: int = Field(ge=5 * 1024 * 1024)
    parts: list[BackupPart] = Field(min_length=1, max_length=120)
    ignore: list[str] = Field(default_factory=list, max_length=256)


class RestoreCommand(_CommandBase):
    """Restore a backup from a presigned GET URL; the agent verifies ``sha256`` before touching files."""

    type: Literal["backup.restore"] = "backup.restore"
    server_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    backup_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str = Field(max_length=8192)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    wipe: bool = False


Command = Annotated[
    Union[InstallCommand, PowerCommand, ConsoleCommand, BacklogCommand, DeleteCommand, ViewerCommand, FileCommand,
          BackupCommand, RestoreCommand, UpdateCommand, ReinstallCommand],
    Field(discriminator="type"),
]
_command_adapter: TypeAdapter[Any] = TypeAdapter(Command)


# ---- agent -> control plane / viewers ------------------------------------------------


class Ack(Strict):
    """The result of one command, published once per delivery (``duplicate`` on repeats)."""

    v: Literal[1] = VERSION
    id: str = Field(max_length=64)
    ts: float = Field(default_factory=time.time)
    ok: bool
    error: str | None = Field(default=None, max_length=2048)
    duplicate: bool = False


class Reply(Strict):
    """The answer to a request/response command (``server.files``): its result or error, by command id."""

    v: Literal[1] = VERSION
    id: str = Field(max_length=64)
    ts: float = Field(default_factory=time.time)
    ok: bool
    error: str | None = Field(default=None, max_length=2048)
    code: str | None = Field(default=None, max_length=64)
    result: dict[str, Any] | None = None


class BackupEvent(Strict):
    """Progress and outcome of a backup or restore; the final create event carries what S3 needs."""

    v: Literal[1] = VERSION
    ts: float = Field(default_factory=time.time)
    backup_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    action: Literal["create", "restore"] = "create"
    status: Literal["running", "completed", "failed"]
    bytes: int = Field(default=0, ge=0)
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    etags: list[str] = Field(default_factory=list, max_length=120)
    error: str | None = Field(default=None, max_length=2048)


class StateMessage(Strict):
    """Retained power state; ``seq`` grows per server so an older state never wins."""

    v: Literal[1] = VERSION
    ts: float = Field(default_factory=time.time)
    server_id: str
    state: ServerState
    seq: int = Field(ge=0)
    detail: str | None = Field(default=None, max_length=8192)


class ConsoleMessage(Strict):
    """A batch of console lines (<= 50 ms, <= 64 KB); ``dropped`` counts throttled lines."""

    v: Literal[1] = VERSION
    ts: float = Field(default_factory=time.time)
    lines: list[str]
    backlog: bool = False
    dropped: int = Field(default=0, ge=0)
    source: Literal["server", "install", "agent"] = "server"


class NodeStatus(Strict):
    """Retained node status and heartbeat; the broker's last will publishes ``offline``."""

    v: Literal[1] = VERSION
    ts: float = Field(default_factory=time.time)
    status: Literal["online", "offline"]
    runtime: str | None = None
    isolated: bool | None = None
    agent_version: str | None = None
    # Heartbeat fields: the actual state of every server, so the control plane can
    # reconcile after a reconnect, and the period after which silence means trouble.
    servers: dict[str, ServerState] | None = None
    uptime_s: float | None = Field(default=None, ge=0)
    heartbeat_s: float | None = Field(default=None, gt=0)
    # When the agent's current broker connection began (its last will carries the same value):
    # orders an old connection's will before a newer connection's "online".
    session: float | None = None


class StatsMessage(Strict):
    """One resource sample per second per running, viewed server (cpu: % of one core)."""

    v: Literal[1] = VERSION
    ts: float = Field(default_factory=time.time)
    cpu_percent: float = Field(ge=0)
    memory_bytes: int = Field(ge=0)
    memory_limit_bytes: int = Field(ge=0)
    rx_bytes: int = Field(ge=0)
    tx_bytes: int = Field(ge=0)
    uptime_s: float = Field(ge=0)
    disk_bytes: int = Field(default=0, ge=0)
    disk_limit_bytes: int = Field(default=0, ge=0)


class ProtocolError(ValueError):
    """A payload that must not be acted on; the message says why."""


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def _load(payload: bytes | str) -> Any:
    if isinstance(payload, bytes) and len(payload) > 256 * 1024:
        raise ProtocolError("payload too large")
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"payload is not JSON: {exc}") from None


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where or 'payload'}: {first.get('msg')}" + (
        f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    )


def decode_command(payload: bytes | str, now: float | None = None) -> Any:
    """Parse and validate a command, refusing stale or future-dated ones."""
    raw = _load(payload)
    try:
        cmd = _command_adapter.validate_python(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid command: {_short(exc)}") from None
    now = time.time() if now is None else now
    if cmd.ts < now - MAX_COMMAND_AGE:
        raise ProtocolError(f"stale command {cmd.id}: issued {now - cmd.ts:.0f}s ago")
    if cmd.ts > now + MAX_CLOCK_SKEW:
        raise ProtocolError(f"command {cmd.id} is dated in the future")
    return cmd


def decode(model: type[BaseModel], payload: bytes | str) -> Any:
    """Parse and validate any non-command message."""
    raw = _load(payload)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid {model.__name__}: {_short(exc)}") from None
