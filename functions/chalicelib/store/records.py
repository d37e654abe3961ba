"""The records the control plane keeps, independent of the storage backend."""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, ConfigDict, Field
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
    last_seen: float | None = None


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


class Subuser(Record):
    server_id: str
    user_id: str
    permissions: list[str]


class Grant(Record):
    """Short-lived broker credentials given to one user for one server."""

    username: str
    user_id: str
    server_id: str
    node_id: str
    expires_at: float


class AuditEntry(Record):
    id: str = Field(default_factory=new_id)
    ts: float = Field(default_factory=time.time)
    actor_id: str
    action: str
    server_id: str | None = None
    source_ip: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
