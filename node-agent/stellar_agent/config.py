"""Agent configuration: one file per node, validated up front so mistakes fail at boot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message names the field."""


class AgentConfig(BaseModel):
    """Everything one node agent needs; unknown keys are refused to catch typos."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=1883, ge=1, le=65535)
    broker_username: str | None = None
    broker_password: str | None = None
    broker_tls: bool = False
    broker_ca: Path | None = None
    broker_cert: Path | None = None
    broker_key: Path | None = None
    data_dir: Path
    runtime: Literal["auto", "docker", "process"] = "auto"
    stop_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    console_batch_ms: int = Field(default=50, ge=1, le=10_000)
    backlog_lines: int = Field(default=150, ge=0, le=100_000)
    # Short enough that the broker's last will fires within 10 s of a node dying (1.5 x keepalive).
    keepalive_s: int = Field(default=3, ge=2, le=3600)  # broker fires the last will after 1.5x: offline within ~5-7 s
    # Console throttle (Wings: 2,000 lines per 100 ms); 0 disables it.
    console_throttle_lines: int = Field(default=2000, ge=0, le=1_000_000)
    console_throttle_ms: int = Field(default=100, ge=10, le=60_000)
    # Console messages kept for the broker while disconnected; beyond that they are
    # dropped and counted, so a long outage cannot exhaust the agent's memory.
    offline_console_limit: int = Field(default=2000, ge=0, le=1_000_000)
    stats_interval_s: float = Field(default=1.0, ge=0.1, le=3600)
    # The control plane counts a node silent for 2 heartbeats as offline (< 10 s at 4 s).
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600)
    # How often running servers' directories are measured against their disk limit.
    disk_check_interval_s: float = Field(default=60.0, ge=0.5, le=86_400)
    # Reconnect: exponential backoff between these bounds with full jitter.
    reconnect_min_s: float = Field(default=0.5, ge=0.05, le=60)
    reconnect_max_s: float = Field(default=60.0, ge=0.1, le=3600)

    @property
    def servers_dir(self) -> Path:
        return self.data_dir / "servers"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"


def load(path: Path | str) -> AgentConfig:
    """Read a YAML or JSON config file, with an error that says which file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "config"
        raise ConfigError(f"{path}: {where}: {first.get('msg')}") from None
