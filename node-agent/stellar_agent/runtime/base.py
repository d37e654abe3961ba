"""The runtime interface: how a server's process is created, fed, signalled and watched.

Modelled on Wings' ``environment.ProcessEnvironment``: the ``Server`` state machine only
talks to this interface, so Docker and the unisolated process runtime are interchangeable.
Every method is keyed by server id; a runtime keeps its own handles per server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stellar_protocol.messages import ServerSpec

CONTAINER_HOME = "/home/container"
SERVER_UID = 1000
SERVER_GID = 1000


@dataclass(frozen=True)
class Sample:
    """One resource reading of a running instance (cpu: % of one core, like Wings)."""

    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int
    rx_bytes: int
    tx_bytes: int
    uptime_s: float


class RuntimeError_(RuntimeError):
    """A runtime operation failed; the message is safe to show in an Ack."""


class Runtime(ABC):
    """One way of running game servers on this node."""

    name: str = "abstract"
    isolated: bool = False

    @abstractmethod
    def create(self, spec: ServerSpec, server_dir: Path) -> None:
        """Make a fresh, not yet started instance (replacing any stopped old one)."""

    @abstractmethod
    def start(self, server_id: str) -> None:
        """Start the instance made by ``create``."""

    @abstractmethod
    def output(self, server_id: str, from_start: bool = True) -> Iterator[bytes]:
        """Raw stdout+stderr chunks until the instance exits (``from_start`` replays)."""

    @abstractmethod
    def write_stdin(self, server_id: str, data: bytes) -> None:
        """Send bytes to the game's stdin (console commands)."""

    @abstractmethod
    def signal(self, server_id: str, signame: str) -> None:
        """Deliver a signal by name (e.g. ``SIGINT``) to the game."""

    @abstractmethod
    def kill(self, server_id: str) -> None:
        """SIGKILL: the last resort after a stop timed out."""

    @abstractmethod
    def wait(self, server_id: str) -> int:
        """Block until the instance has exited; return its exit code."""

    @abstractmethod
    def is_running(self, server_id: str) -> bool:
        """Whether the instance is alive right now."""

    @abstractmethod
    def attach(self, spec: ServerSpec, server_dir: Path) -> bool:
        """Pick up an instance left running by a previous agent; False when there is none."""

    @abstractmethod
    def detach(self, server_id: str) -> None:
        """Forget local handles but leave the instance running (agent shutdown)."""

    @abstractmethod
    def remove(self, server_id: str) -> None:
        """Destroy the instance (it must not be running, or it is killed)."""

    @abstractmethod
    def run_install(self, spec: ServerSpec, server_dir: Path, on_line: Callable[[str], None]) -> int:
        """Run the install script to completion, one output line per ``on_line``; return its exit code."""

    def stats(self, server_id: str) -> Sample | None:
        """A resource sample of the running instance, or None (not running, not measurable)."""
        return None

    def oom_killed(self, server_id: str) -> bool:
        """Whether the last exit was the kernel's OOM killer (reported with the crash)."""
        return False

    def close(self) -> None:
        """Release runtime resources at agent shutdown (default: nothing)."""
        return None
