"""Process runtime: UNISOLATED. Runs the startup line as a plain child process on the host.

This exists for development machines without Docker. It gives no filesystem, network or
user isolation: the game runs as the agent's own user with the host's ``sh`` and tools
(``spec.image`` is ignored). Each server gets its own session/process group so signals
reach the whole tree, and a few rlimits. Children cannot survive an agent restart (their
stdout is a pipe to the agent), so ``close()`` stops them and ``attach`` always fails.
"""

from __future__ import annotations

import logging
import os
import resource
import signal as signals
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from stellar_protocol.messages import ServerSpec

from ..console import LineSplitter
from .base import Runtime, RuntimeError_, Sample

log = logging.getLogger(__name__)

HOST_PATH = "/usr/local/bin:/usr/bin:/bin"


def _environment(spec: ServerSpec, server_dir: Path) -> dict[str, str]:
    """Only the spec's variables plus a minimal PATH/HOME: nothing leaks from the agent."""
    env = {"PATH": HOST_PATH, "HOME": str(server_dir), "TMPDIR": str(server_dir / ".tmp")}
    env.update(spec.environment)
    return env


def _limit(pid: int, spec: ServerSpec) -> None:
    """Best-effort rlimits applied right after spawn (preexec_fn is unsafe with threads)."""
    disk = spec.limits.disk_mb * 1024 * 1024
    for which, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 4096),
        (resource.RLIMIT_FSIZE, disk),
    ):
        try:
            soft, hard = resource.prlimit(pid, which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.prlimit(pid, which, (cap, cap))
        except (OSError, ValueError):
            pass


class _Proc:
    def __init__(self, spec: ServerSpec, server_dir: Path) -> None:
        self.spec = spec
        self.server_dir = server_dir
        self.popen: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.started_at = 0.0
        self.cpu: tuple[float, float] | None = None  # previous (cpu seconds, wall time)


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _session_usage(sid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes of every process in session ``sid`` (the game's tree)."""
    cpu, rss = 0.0, 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after "(comm)": state ppid pgrp session ...
            cpu += (int(fields[11]) + int(fields[12])) / _TICK
            rss += int(fields[21]) * _PAGE
    return cpu, rss


class ProcessRuntime(Runtime):
    name = "process"
    isolated = False

    def __init__(self, stop_grace_s: float = 10.0) -> None:
        self._procs: dict[str, _Proc] = {}
        self._lock = threading.Lock()
        self._grace = stop_grace_s

    def _get(self, server_id: str) -> _Proc:
        with self._lock:
            proc = self._procs.get(server_id)
        if proc is None:
            raise RuntimeError_(f"no process for server {server_id}")
        return proc

    def _popen(self, server_id: str) -> subprocess.Popen[bytes]:
        popen = self._get(server_id).popen
        if popen is None:
            raise RuntimeError_(f"server {server_id} was never started")
        return popen

    def create(self, spec: ServerSpec, server_dir: Path) -> None:
        with self._lock:
            old = self._procs.get(spec.server_id)
            if old and old.popen and old.popen.poll() is None:
                raise RuntimeError_("process is already running")
            self._procs[spec.server_id] = _Proc(spec, server_dir)

    def start(self, server_id: str) -> None:
        proc = self._get(server_id)
        (proc.server_dir / ".tmp").mkdir(exist_ok=True)
        try:
            proc.popen = subprocess.Popen(
                ["sh", "-c", proc.spec.startup],
                cwd=proc.server_dir,
                env=_environment(proc.spec, proc.server_dir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise RuntimeError_(f"process failed to start: {exc}") from None
        _limit(proc.popen.pid, proc.spec)
        proc.started_at, proc.cpu = time.time(), None

    def stats(self, server_id: str) -> Sample | None:
        """Read from /proc: no network counters (the game shares the host's stack)."""
        with self._lock:
            proc = self._procs.get(server_id)
        if proc is None or proc.popen is None or proc.popen.poll() is not None:
            return None
        cpu, rss = _session_usage(proc.popen.pid)
        now = time.monotonic()
        percent = 0.0
        if proc.cpu is not None and now > proc.cpu[1]:
            percent = max(cpu - proc.cpu[0], 0.0) / (now - proc.cpu[1]) * 100.0
        proc.cpu = (cpu, now)
        return Sample(
            cpu_percent=round(percent, 2),
            memory_bytes=rss,
            memory_limit_bytes=proc.spec.limits.memory_mb * 1024 * 1024,
            rx_bytes=0,
            tx_bytes=0,
            uptime_s=max(time.time() - proc.started_at, 0.0),
        )

    def output(self, server_id: str, from_start: bool = True) -> Iterator[bytes]:
        popen = self._popen(server_id)
        assert popen.stdout is not None
        fd = popen.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            yield chunk

    def write_stdin(self, server_id: str, data: bytes) -> None:
        proc = self._get(server_id)
        popen = self._popen(server_id)
        with proc.lock:
            try:
                assert popen.stdin is not None
                popen.stdin.write(data)
                popen.stdin.flush()
            except (OSError, ValueError) as exc:
                raise RuntimeError_(f"cannot write to console: {exc}") from None

    def signal(self, server_id: str, signame: str) -> None:
        popen = self._popen(server_id)
        try:
            sig = signals.Signals[signame if signame.startswith("SIG") else f"SIG{signame}"]
        except KeyError:
            raise RuntimeError_(f"unknown signal {signame}") from None
        try:
            os.killpg(popen.pid, sig)  # the whole session: the game and anything it spawned
        except ProcessLookupError:
            pass

    def kill(self, server_id: str) -> None:
        self.signal(server_id, "SIGKILL")

    def wait(self, server_id: str) -> int:
        return self._popen(server_id).wait()

    def is_running(self, server_id: str) -> bool:
        with self._lock:
            proc = self._procs.get(server_id)
        return bool(proc and proc.popen and proc.popen.poll() is None)

    def attach(self, spec: ServerSpec, server_dir: Path) -> bool:
        return False  # children die with the agent's pipes; nothing to re-attach to

    def detach(self, server_id: str) -> None:
        """Processes cannot outlive their pipes; nothing to keep, so nothing to drop here."""

    def remove(self, server_id: str) -> None:
        if self.is_running(server_id):
            self.kill(server_id)
            self._popen(server_id).wait(timeout=10)
        with self._lock:
            self._procs.pop(server_id, None)

    def run_install(self, spec: ServerSpec, server_dir: Path, on_line: Callable[[str], None]) -> int:
        """Runs ``entrypoint <script file>`` in the server dir on the host (unisolated)."""
        assert spec.install is not None
        with tempfile.TemporaryDirectory(prefix=f"stellar-install-{spec.server_id}-") as tmp:
            script = Path(tmp) / "install.sh"
            script.write_text(spec.install.script, encoding="utf-8")
            try:
                popen = subprocess.Popen(
                    [spec.install.entrypoint, str(script)],
                    cwd=server_dir,
                    env=_environment(spec, server_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise RuntimeError_(f"install failed to start: {exc}") from None
            _limit(popen.pid, spec)
            assert popen.stdout is not None
            splitter = LineSplitter()
            while chunk := popen.stdout.read1(65536):
                for line in splitter.feed(chunk):
                    on_line(line)
            for line in splitter.flush():
                on_line(line)
            return popen.wait()

    def close(self) -> None:
        """Agent shutdown: stop every child (SIGTERM, then SIGKILL) rather than orphan it."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.popen and proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signals.SIGTERM)
                    proc.popen.wait(timeout=self._grace)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.popen.pid, signals.SIGKILL)
                    proc.popen.wait(timeout=5)
                except ProcessLookupError:
                    pass
