"""Runtimes: how game servers are actually run (Docker, or unisolated host processes)."""

from __future__ import annotations

import logging

from ..config import AgentConfig
from .base import Runtime, RuntimeError_
from .docker import DockerRuntime, docker_available
from .process import ProcessRuntime

log = logging.getLogger(__name__)

__all__ = [
    "DockerRuntime",
    "ProcessRuntime",
    "Runtime",
    "RuntimeError_",
    "docker_available",
    "select_runtime",
]


def select_runtime(config: AgentConfig) -> Runtime:
    """``auto`` prefers Docker and falls back to the unisolated process runtime, loudly."""
    choice = config.runtime
    if choice == "auto":
        choice = "docker" if docker_available() else "process"
    if choice == "docker":
        return DockerRuntime(config.node_id)
    log.warning("using the UNISOLATED process runtime: game servers run as plain host processes")
    return ProcessRuntime(stop_grace_s=min(config.stop_timeout_s, 10.0))
