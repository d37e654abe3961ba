"""The records the control plane keeps, independent of the storage backend."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from contextvars import ContextVar
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from stellar_protocol.messages import Port, ServerState


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = 0  # optimistic-locking version held by the backend


class User(Record):
    id: str
    email: str
    admin: bool = False
    created_at: float = Field(default_factory=time.time)
    # Access tokens issued before this moment (epoch seconds) are refused: sign-out everywhere.
    tokens_valid_after: float | None = None
    suspended: bool = False  # refused at sign-in (Cognito disabled) and on every older token


class Location(Record):
    id: str
    name: str


class Node(Record):
    id: str
    name: str
    location_id: str
    address: str = "127.0.0.1"
    memory_mb: int
    disk_mb: int
    cpu_percent: int = 400
    overallocate_percent: int = 0
    port_start: int
    port_end: int
    status: str = "offline"
    runtime: str | None = None
    isolated: bool | None = None
    last_seen: float | None = None  # agent time of the last "online" heartbeat
    # Further public addresses shown to players (the ports are bound on ``address``).
    addresses: list[str] = Field(default_factory=list)
    # Extra port ranges beyond port_start..port_end, as [first, last] pairs.
    port_ranges: list[tuple[int, int]] = Field(default_factory=list)
    heartbeat_s: float | None = None  # the agent's heartbeat period, for the staleness check
    session: float | None = None  # the agent connection the status belongs to (orders last wills)
    status_ts: float | None = None
    offline_reported: bool = False  # the node (or its last will) said offline for this session
    # Servers deleted here whose removal the node has not confirmed (finished on reconnect).
    pending_deletes: list[str] = Field(default_factory=list)
    # One-time enrollment: only a hash of the token is kept, and it expires.
    enroll_token_hash: str | None = None
    enroll_expires_at: float | None = None
    enrolled_at: float | None = None

    def port_pool(self) -> list[int]:
        """Every port the node may hand out, ascending, without repeats."""
        ports = set(range(self.port_start, self.port_end + 1))
        for first, last in self.port_ranges:
            ports.update(range(first, last + 1))
        return sorted(ports)


class Allocation(Record):
    node_id: str
    ip: str
    port: int
    server_id: str


class Server(Record):
    id: str
    name: str
    owner_id: str
    node_id: str
    location_id: str
    blueprint_id: str
    image: str
    variables: dict[str, str]
    memory_mb: int
    disk_mb: int
    cpu_percent: int
    ports: list[Port]
    status: ServerState = "installing"
    status_detail: str | None = None
    state_seq: int = -1
    created_at: float = Field(default_factory=time.time)
    description: str = ""
    suspended: bool = False  # stopped, and power is refused until unsuspended


class Subuser(Record):
    server_id: str
    user_id: str
    permissions: list[str]
    email: str | None = None  # copied at invite: other users' profiles are not readable (RLS)


class Grant(Record):
    """Short-lived broker credentials given to one user for one server."""

    username: str
    user_id: str
    server_id: str
    node_id: str
    expires_at: float
    password_hash: str | None = None  # scrypt; what the IoT Core custom authorizer verifies


# The request being served (source IP, user agent), set by ``api.routing`` for its duration, so
# every audit entry written while serving it carries them even where the caller did not pass them.
REQUEST_ORIGIN: ContextVar[dict[str, str | None] | None] = ContextVar("stellar_request_origin", default=None)


class AuditEntry(Record):
    id: str = Field(default_factory=new_id)
    ts: float = Field(default_factory=time.time)
    actor_id: str
    action: str
    server_id: str | None = None
    target: str | None = None  # what was acted on beyond the server: "subuser:<uid>", "apikey:<prefix>"
    source_ip: str | None = None
    user_agent: str | None = None
    details: dict[str, str] = Field(default_factory=dict)  # never secrets

    def stamp_origin(self) -> AuditEntry:
        """Fill source IP and user agent from the request being served (stores call it on write)."""
        origin = REQUEST_ORIGIN.get()
        if origin:
            self.source_ip = self.source_ip or origin.get("source_ip")
            self.user_agent = self.user_agent or origin.get("user_agent")
        return self


class Idempotency(Record):
    """The outcome of a request sent with an Idempotency-Key, replayed on a retry until it expires."""

    user_id: str
    key: str
    request_hash: str
    status: str = "pending"  # pending | done
    response: dict[str, Any] | None = None
    expires_at: float


class BlueprintVersion(Record):
    """One immutable version of a blueprint: a new definition is a new ``number``, never an edit."""

    blueprint_id: str
    number: int = Field(default=0, ge=0)  # 0 on create: the store assigns latest + 1
    name: str
    definition: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = None
    created_at: float = Field(default_factory=time.time)


class ScheduleTask(BaseModel):
    """One step of a schedule, run ``offset_s`` seconds after the previous one (list order is run order)."""

    model_config = ConfigDict(extra="ignore")

    action: str  # command | power | backup
    payload: str = ""
    offset_s: int = Field(default=0, ge=0, le=86_400)
    continue_on_failure: bool = False


class Schedule(Record):
    id: str = Field(default_factory=new_id)
    server_id: str
    name: str
    cron: str  # five fields; the next run is computed by the scheduler, which passes it in
    timezone: str = "UTC"
    enabled: bool = True
    only_when_online: bool = False
    tasks: list[ScheduleTask] = Field(default_factory=list)
    next_run: float | None = None  # epoch seconds; None (or disabled): never due
    last_run: float | None = None
    last_result: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Backup(Record):
    id: str = Field(default_factory=new_id)
    server_id: str
    name: str
    status: str = "pending"  # pending | completed | failed
    size_bytes: int = 0
    sha256: str | None = None
    locked: bool = False  # a locked backup cannot be deleted
    created_at: float = Field(default_factory=time.time)


API_KEY_PREFIX = "stk_"


def hash_api_secret(secret: str) -> str:
    """SHA-256 is enough here: the secret is 32 random bytes, not a password to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(Record):
    """A user's API key; only the hash of its secret is kept, plus a public prefix to find it by."""

    prefix: str  # public and unique, shown in lists: "stk_" + 8 hex
    user_id: str
    key_hash: str
    name: str
    permissions: list[str] = Field(default_factory=list)
    server_id: str | None = None  # None: every server the user can reach; else only this one
    created_at: float = Field(default_factory=time.time)
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None

    @staticmethod
    def mint(user_id: str, name: str, expires_at: float | None = None,
             permissions: list[str] | None = None, server_id: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its full token (``<prefix>_<secret>``), shown to the user once."""
        prefix = API_KEY_PREFIX + secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(prefix=prefix, user_id=user_id, key_hash=hash_api_secret(secret), name=name,
                     expires_at=expires_at, permissions=permissions or [], server_id=server_id)
        return key, f"{prefix}_{secret}"

    @staticmethod
    def split(token: str) -> tuple[str, str]:
        """(prefix, secret hash) of a presented token; ValueError if it is not shaped like one."""
        if not token.startswith(API_KEY_PREFIX):
            raise ValueError("not an API key")
        prefix, sep, secret = token[len(API_KEY_PREFIX):].partition("_")
        if not sep or len(prefix) != 8 or not secret:
            raise ValueError("not an API key")
        return API_KEY_PREFIX + prefix, hash_api_secret(secret)
