"""One game server: its power state machine, console and on-disk records.

States (as Wings): installing → offline | install_failed; offline → starting → running
(a console line matched ``done``) → stopping → offline. An exit nobody asked for is a
crash: reported as offline "crashed (exit N)" and restarted once, unless the previous
crash was under a minute ago (so a crash loop does not spin). Every operation runs on
the server's own worker thread, so commands for one server apply in order while other
servers proceed in parallel.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from stellar_protocol import topics
from stellar_protocol.messages import ConsoleMessage, ServerSpec, StateMessage, StatsMessage, encode

from .config import AgentConfig
from .configfiles import apply_config_files, patch_values
from .console import Console, LineSplitter
from .runtime.base import SERVER_GID, SERVER_UID, Runtime, RuntimeError_
from .storage import read_json, write_json

log = logging.getLogger(__name__)

CRASH_WINDOW_S = 60.0
KILL_WAIT_S = 15.0
MB = 1024 * 1024
STATS_DISK_MAX_AGE_S = 10.0  # stats re-measure the directory at most this often
ACTIVE = frozenset({"starting", "running", "stopping"})


class Publisher(Protocol):
    def __call__(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


class ServerError(Exception):
    """An operation was refused or failed; the message goes into the command's Ack."""


def _chown_tree(root: Path) -> None:
    """Give the server files to uid/gid 1000 (the container user) when we are root."""
    if os.geteuid() != 0:
        return
    os.chown(root, SERVER_UID, SERVER_GID)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                os.chown(os.path.join(dirpath, name), SERVER_UID, SERVER_GID, follow_symlinks=False)
            except OSError:
                pass


def dir_usage(root: Path) -> int:
    """Bytes allocated under ``root`` (st_blocks, so sparse files count as what they use).

    Symlinks are measured as links, never followed: a link to / must not make a tenant's
    usage the host's.
    """
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class Server:
    """State, console and serialized operations of one game server on this node."""

    def __init__(
        self,
        spec: ServerSpec,
        config: AgentConfig,
        runtime: Runtime,
        publish: Publisher,
        viewed: Callable[[], bool] | None = None,
    ) -> None:
        self.spec = spec
        self.id = spec.server_id
        self.config = config
        self.runtime = runtime
        self._publish = publish
        self.dir = config.volumes_dir / self.id
        self.spec_path = config.servers_dir / f"{self.id}.json"
        self.state_path = config.servers_dir / f"{self.id}.state"
        saved = read_json(self.state_path) or {}
        self.seq: int = int(saved.get("seq", 0))
        self.state: str = saved.get("state", "offline")
        self.detail: str | None = saved.get("detail")
        self._lock = threading.RLock()
        self._exited = threading.Event()
        self._exited.set()
        self._stop_requested = False
        self._exit_detail = "stopped"
        self._last_crash: float | None = None
        self._generation = 0
        self._closed = False
        self._done = self._compile_done(spec)
        # How to stop what runs now: an update may change the spec's stop method while the old
        # game still runs, and that game must be stopped its own way.
        self._stop_spec = spec.stop
        self._viewed = viewed or (lambda: True)
        self._disk: tuple[int, float] | None = None  # (bytes, monotonic time measured)
        self._disk_stop_pending = False
        self.console = Console(
            self._publish_console,
            config.console_batch_ms,
            config.backlog_lines,
            throttle_lines=config.console_throttle_lines,
            throttle_ms=config.console_throttle_ms,
        )
        self._queue: queue.Queue[tuple[Callable[[], None], Callable[[str | None], None]] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"server-{self.id}", daemon=True)
        self._worker.start()

    # ---- records and publication ------------------------------------------------------
    @staticmethod
    def _compile_done(spec: ServerSpec) -> list[re.Pattern[str]]:
        if spec.done_regex:
            return [re.compile(p) for p in spec.done]
        return [re.compile(re.escape(p)) for p in spec.done]

    def save_spec(self) -> None:
        write_json(self.spec_path, self.spec.model_dump(mode="json"))

    def _set_state(self, state: str, detail: str | None = None) -> None:
        """Persist, then publish retained: the seq on disk is never behind the wire."""
        with self._lock:
            self.state, self.detail = state, detail
            self.seq += 1
            write_json(self.state_path, {"seq": self.seq, "state": state, "detail": detail})
            msg = StateMessage(server_id=self.id, state=state, seq=self.seq, detail=detail)  # type: ignore[arg-type]
            log.info("server %s: %s%s", self.id, state, f" ({detail})" if detail else "")
            self._publish(topics.server_state(self.config.node_id, self.id), encode(msg), 1, True)

    def publish_state(self) -> None:
        """Re-announce the current state (after a reconnect), with a fresh seq."""
        self._set_state(self.state, self.detail)

    def _publish_console(self, msg: ConsoleMessage) -> None:
        """Cost rule: console leaves the node only while a viewer holds a grant.

        QoS 1, so batches produced while the broker is away are delivered when it is back.
        A backlog is an explicit request, answered even without a grant.
        """
        if msg.backlog or self._viewed():
            self._publish(topics.server_console(self.config.node_id, self.id), encode(msg), 1, False)

    # ---- resources ----------------------------------------------------------------------
    def disk_usage(self, max_age: float = 0.0) -> int:
        now = time.monotonic()
        if self._disk is None or now - self._disk[1] > max_age:
            self._disk = (dir_usage(self.dir), now)
        return self._disk[0]

    def over_disk(self) -> str | None:
        """Why the server is over its disk limit, or None (a fresh measurement)."""
        used, limit = self.disk_usage(), self.spec.limits.disk_mb
        if used > limit * MB:
            return f"disk limit exceeded: {used / MB:.1f} MB used of {limit} MB"
        return None

    def check_disk(self) -> None:
        """Periodic enforcement: a running server over its limit is stopped (Wings only refuses starts)."""
        if self.state not in ("starting", "running") or self._disk_stop_pending:
            return
        why = self.over_disk()
        if why is None:
            return
        self._disk_stop_pending = True
        self._say(f"{why}; stopping the server")

        def stop() -> None:
            try:
                self.stop(detail=why)
            finally:
                self._disk_stop_pending = False

        self.submit(stop, lambda err: err and log.warning("server %s: disk stop: %s", self.id, err))

    def stats(self) -> StatsMessage | None:
        """A sample while the instance runs, or None."""
        if self.state not in ACTIVE:
            return None
        sample = self.runtime.stats(self.id)
        if sample is None:
            return None
        return StatsMessage(
            cpu_percent=sample.cpu_percent,
            memory_bytes=sample.memory_bytes,
            memory_limit_bytes=sample.memory_limit_bytes,
            rx_bytes=sample.rx_bytes,
            tx_bytes=sample.tx_bytes,
            uptime_s=sample.uptime_s,
            disk_bytes=self.disk_usage(STATS_DISK_MAX_AGE_S),
            disk_limit_bytes=self.spec.limits.disk_mb * MB,
        )

    def publish_stats(self) -> bool:
        """Publish one sample if running and viewed; True when something was sent."""
        if not self._viewed():
            return False
        msg = self.stats()  # Docker may take up to a second: the grant can lapse meanwhile
        if msg is None or not self._viewed():
            return False
        self._publish(topics.server_stats(self.config.node_id, self.id), encode(msg), 0, False)
        return True

    def _say(self, text: str) -> None:
        self.console.push(f"[StellarStack] {text}", "agent")

    # ---- serialized operations ------------------------------------------------------
    def submit(self, op: Callable[[], None], on_done: Callable[[str | None], None]) -> None:
        """Queue an operation; ``on_done`` gets None on success or the error text."""
        self._queue.put((op, on_done))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            op, on_done = item
            try:
                op()
                error = None
            except ServerError as exc:
                error = str(exc)
            except Exception as exc:  # never let one bad operation kill the worker
                log.exception("server %s: operation failed", self.id)
                error = f"internal error: {exc}"
            try:
                on_done(error)
            except Exception:
                log.exception("server %s: completion callback failed", self.id)

    def install(self, spec: ServerSpec | None = None) -> None:
        """(Re)install: runs the blueprint's script in a throw-away instance."""
        with self._lock:
            if self.state in ACTIVE or self.runtime.is_running(self.id):
                raise ServerError(f"server is {self.state}; stop it before installing")
            if spec is not None:
                self.spec = spec
                self._done = self._compile_done(spec)
            self.save_spec()
        self._set_state("installing")
        self.dir.mkdir(parents=True, exist_ok=True)
        _chown_tree(self.dir)
        if self.spec.install is None:
            self._set_state("offline", "installed (no install script)")
            return
        self._say("Running install script")
        try:
            code = self.runtime.run_install(self.spec, self.dir, lambda line: self.console.push(line, "install"))
        except RuntimeError_ as exc:
            self._set_state("install_failed", str(exc))
            raise ServerError(f"install failed: {exc}") from None
        _chown_tree(self.dir)
        if code != 0:
            self._say(f"Install script exited with code {code}")
            self._set_state("install_failed", f"install script exited {code}")
            raise ServerError(f"install script exited {code}")
        self._say("Install finished")
        self._set_state("offline", "installed")

    def update(self, spec: ServerSpec) -> None:
        """Persist a new spec; it takes effect at the next start (a running server is not restarted)."""
        if spec.server_id != self.id:
            raise ServerError(f"spec is for {spec.server_id}, not {self.id}")
        with self._lock:
            self.spec = spec
            self._done = self._compile_done(spec)
            self.save_spec()
        if self.state in ACTIVE:
            self._say("Server settings changed; they apply at the next restart")

    def reinstall(self) -> None:
        """Stop if running (the game's own stop, then SIGKILL), then re-run the install script."""
        self.stop(detail="stopped for reinstall")
        self.install()

    def start(self) -> None:
        with self._lock:
            if self.state in ACTIVE:
                raise ServerError(f"server is already {self.state}")
            if self.state == "installing":
                raise ServerError("server is installing")
            if self.state == "install_failed":
                raise ServerError("install failed; reinstall the server first")
            self._stop_requested = False
            self._stop_spec = self.spec.stop
        self.dir.mkdir(parents=True, exist_ok=True)
        over = self.over_disk()
        if over is not None:  # as Wings: a server over its disk limit does not start
            self._say(over)
            raise ServerError(over)
        self._set_state("starting")
        self.dir.mkdir(parents=True, exist_ok=True)
        # Blueprint config-file patches (issue 6), rewritten before every start as Wings does;
        # a file that cannot be patched is reported on the console and does not block the start.
        for problem in apply_config_files(self.dir, self.spec.config_files, patch_values(self.spec, self.runtime)):
            self._say(problem)
        _chown_tree(self.dir)
        try:
            self.runtime.create(self.spec, self.dir)
            self.runtime.start(self.id)
        except RuntimeError_ as exc:
            self._set_state("offline", f"start failed: {exc}")
            raise ServerError(f"start failed: {exc}") from None
        self._launch_reader(from_start=True)
        if not self._done:
            self._set_state("running")

    def stop(self, detail: str = "stopped") -> None:
        """Ask nicely (signal or console command), wait ``stop_timeout_s``, then SIGKILL."""
        with self._lock:
            if self.state not in ACTIVE:
                return  # already stopped: stopping is idempotent
            self._stop_requested = True
            self._exit_detail = detail
        self._set_state("stopping")
        stop = self._stop_spec
        try:
            if stop.type == "signal":
                self.runtime.signal(self.id, stop.value)
            else:
                self.runtime.write_stdin(self.id, (stop.value + "\n").encode())
        except RuntimeError_ as exc:
            log.warning("server %s: stop request failed: %s", self.id, exc)
        if self._exited.wait(self.config.stop_timeout_s):
            return
        self._say(f"Server did not stop within {self.config.stop_timeout_s:g}s; killing it")
        self._exit_detail = f"killed after {self.config.stop_timeout_s:g}s stop timeout"
        self._kill_and_wait()

    def kill(self) -> None:
        with self._lock:
            if self.state not in ACTIVE:
                return
            self._stop_requested = True
            self._exit_detail = "killed"
        self._kill_and_wait()

    def _kill_and_wait(self) -> None:
        try:
            self.runtime.kill(self.id)
        except RuntimeError_ as exc:
            log.warning("server %s: kill failed: %s", self.id, exc)
        if not self._exited.wait(KILL_WAIT_S):
            raise ServerError("server did not exit after SIGKILL")

    def restart(self) -> None:
        self.stop()
        self.start()

    def send_command(self, line: str) -> None:
        with self._lock:
            if self.state not in ("starting", "running"):
                raise ServerError(f"server is {self.state}; console commands need a running server")
        try:
            self.runtime.write_stdin(self.id, (line + "\n").encode())
        except RuntimeError_ as exc:
            raise ServerError(str(exc)) from None

    def delete(self) -> None:
        """Kill, remove the instance and the files; the seq record stays so seq never resets."""
        self.kill()
        try:
            self.runtime.remove(self.id)
        except RuntimeError_ as exc:
            raise ServerError(f"cannot remove instance: {exc}") from None
        shutil.rmtree(self.dir, ignore_errors=True)
        self.spec_path.unlink(missing_ok=True)
        with self._lock:
            self._closed = True
        # clear the retained state so viewers stop seeing a server that no longer exists
        self._publish(topics.server_state(self.config.node_id, self.id), b"", 1, True)
        self._queue.put(None)
        self.console.close()

    # ---- process watching -------------------------------------------------------------
    def _launch_reader(self, from_start: bool) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._exited.clear()
        threading.Thread(
            target=self._read, args=(generation, from_start), name=f"output-{self.id}", daemon=True
        ).start()

    def _read(self, generation: int, from_start: bool) -> None:
        splitter = LineSplitter()
        try:
            for chunk in self.runtime.output(self.id, from_start):
                if self._closed:
                    return
                for line in splitter.feed(chunk):
                    self._on_line(line)
            for line in splitter.flush():
                self._on_line(line)
            if self._closed:
                return
            code = self.runtime.wait(self.id)
        except Exception as exc:
            if self._closed:
                return
            log.warning("server %s: lost the output stream: %s", self.id, exc)
            code = -1
        self._on_exit(generation, code)

    def _on_line(self, line: str) -> None:
        self.console.push(line)
        if self.state == "starting" and any(p.search(line) for p in self._done):
            with self._lock:
                if self.state == "starting":
                    self._set_state("running")

    def _on_exit(self, generation: int, code: int) -> None:
        restart = False
        with self._lock:
            if self._closed or generation != self._generation:
                return
            if self._stop_requested:
                self._set_state("offline", self._exit_detail)
            else:
                now = time.monotonic()
                restart = self._last_crash is None or now - self._last_crash >= CRASH_WINDOW_S
                self._last_crash = now
                oom = ", out of memory" if self.runtime.oom_killed(self.id) else ""
                self._say(
                    f"Server exited unexpectedly (code {code}{oom})"
                    + ("; restarting" if restart else "; crashed twice within a minute, not restarting")
                )
                self._set_state("offline", f"crashed (exit {code}{oom})")
            self._exited.set()
        if restart:
            self.submit(self._auto_restart, lambda err: err and log.warning("auto-restart: %s", err))

    def _auto_restart(self) -> None:
        with self._lock:
            if self.state != "offline" or not (self.detail or "").startswith("crashed"):
                return  # someone acted on the server meanwhile
        self.start()

    # ---- agent lifecycle --------------------------------------------------------------
    def restore(self) -> None:
        """After an agent (re)start: re-attach to a live instance or settle the saved state."""
        previous = self.state
        try:
            attached = self.runtime.attach(self.spec, self.dir)
        except RuntimeError_ as exc:
            log.warning("server %s: cannot re-attach: %s", self.id, exc)
            attached = False
        if attached:
            self._stop_requested = False
            self._launch_reader(from_start=False)
            self._say("Agent restarted; re-attached to the running server")
            self._set_state("running", "re-attached after agent restart")
        elif previous == "installing":
            self._set_state("install_failed", "install interrupted by an agent restart")
        elif previous in ACTIVE:
            why = (
                "exited while the agent was down"
                if self.runtime.isolated
                else "agent restarted; the process runtime cannot keep servers across restarts"
            )
            self._set_state("offline", why)
        else:
            self._set_state(previous, self.detail)

    def close(self) -> None:
        """Agent shutdown: stop watching, leave the instance alone (Docker keeps it)."""
        with self._lock:
            self._closed = True
        self.runtime.detach(self.id)
        self._queue.put(None)
        self._worker.join(timeout=2)
        self.console.close()
