"""Docker runtime: each server is one hardened container named ``stellar-<server_id>``.

Like Wings, a fresh container is created for every start (so spec changes apply and the
log stream starts clean); the server directory is the only mount. Containers outlive the
agent: after a restart ``attach`` picks running ones up again without touching them.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stellar_protocol.messages import ServerSpec

from ..console import LineSplitter
from .base import CONTAINER_HOME, SERVER_GID, SERVER_UID, Runtime, RuntimeError_, Sample
from .network import Firewall, FirewallError, Networks

log = logging.getLogger(__name__)

INSTALL_MOUNT = "/mnt/install"


def container_name(server_id: str) -> str:
    return f"stellar-{server_id}"


def docker_available(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers a ping; never raises."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def hardening(spec: ServerSpec, server_dir: Path) -> dict[str, Any]:
    """The create() keyword arguments every StellarStack container gets, install included."""
    from docker.types import LogConfig, Mount

    memory = spec.limits.memory_mb * 1024 * 1024
    swap = spec.limits.swap_mb
    return {
        "user": f"{SERVER_UID}:{SERVER_GID}",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "privileged": False,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,noexec,size=64m"},
        "read_only": spec.read_only_root,
        "pids_limit": spec.limits.pids,
        "mem_limit": memory,
        # Docker counts memory+swap: equal to memory means no swap; -1 means unlimited.
        "memswap_limit": -1 if swap == -1 else memory + swap * 1024 * 1024,
        "nano_cpus": int(spec.limits.cpu_percent * 10_000_000),  # 100 % = one CPU = 1e9
        "mounts": [Mount(target=CONTAINER_HOME, source=str(server_dir), type="bind", read_only=False)],
        "working_dir": CONTAINER_HOME,
        "environment": dict(spec.environment),
        "stdin_open": True,
        "tty": False,
        "log_config": LogConfig(type="json-file", config={"max-size": "5m", "max-file": "1"}),
    }


class _Handle:
    """Local handles for one container: the object and a stdin socket, opened lazily."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.stdin: Any = None
        self.lock = threading.Lock()
        self.streams: list[Any] = []
        self.started_at: float | None = None  # epoch seconds, for uptime
        self.cpu: tuple[int, int] | None = None  # previous (container ns, system ns)


def _epoch(iso: str) -> float | None:
    """Docker's RFC 3339 timestamps carry nanoseconds, which fromisoformat refuses."""
    from datetime import datetime

    if not iso or iso.startswith("0001-"):
        return None
    head, _, frac = iso.rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    return base + (float("0." + frac[:9]) if frac.isdigit() else 0.0)


class DockerRuntime(Runtime):
    name = "docker"
    isolated = True

    def __init__(self, node_id: str, client: Any = None, firewall: Firewall | None = None,
                 require_firewall: bool = False) -> None:
        import docker

        self.node_id = node_id
        self.client = client or docker.from_env(timeout=120)
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        self.networks = Networks(self.client, node_id)
        self.firewall = firewall or Firewall()
        # Without root or iptables the per-server networks still apply, but the host and
        # link-local addresses stay reachable: said loudly, or refused when required.
        self.require_firewall = require_firewall
        self.firewall_active = False
        self._firewall_warned = False

    # ---- isolation ----------------------------------------------------------------
    def _isolate(self, server_id: str) -> str:
        """The server's own network, with the node's firewall chains in place; returns its name."""
        try:
            self.firewall.ensure()
            self.firewall_active = True
        except FirewallError as exc:
            if self.require_firewall:
                raise RuntimeError_(f"tenant firewall unavailable: {exc}") from None
            if not self._firewall_warned:
                log.error("tenant firewall unavailable, containers can reach the host: %s", exc)
                self._firewall_warned = True
            self.firewall_active = False
        try:
            return self.networks.ensure(server_id)
        except FirewallError as exc:
            raise RuntimeError_(str(exc)) from None

    # ---- lookup -------------------------------------------------------------------
    def _get(self, server_id: str) -> _Handle:
        with self._lock:
            handle = self._handles.get(server_id)
        if handle is None:
            raise RuntimeError_(f"no container for server {server_id}")
        return handle

    def _find(self, server_id: str) -> Any:
        """The existing container of this server, checked by label, or None."""
        import docker

        try:
            container = self.client.containers.get(container_name(server_id))
        except docker.errors.NotFound:
            return None
        if container.labels.get("stellar.server") != server_id:
            raise RuntimeError_(f"container {container_name(server_id)} is not ours (labels differ)")
        return container

    def _check_image(self, image: str) -> None:
        import docker

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as exc:
                raise RuntimeError_(f"image {image} is not available: {exc.explanation or exc}") from None

    # ---- lifecycle ----------------------------------------------------------------
    def create(self, spec: ServerSpec, server_dir: Path) -> None:
        self._check_image(spec.image)
        old = self._find(spec.server_id)
        if old is not None:
            old.reload()
            if old.status == "running":
                raise RuntimeError_("container is already running")
            old.remove(force=True)
        ports: dict[str, list[tuple[str, int]]] = {}
        for port in spec.ports:
            ports.setdefault(f"{port.port}/{port.protocol}", []).append((port.ip, port.port))
        container = self.client.containers.create(
            spec.image,
            command=["sh", "-c", spec.startup],
            name=container_name(spec.server_id),
            hostname=spec.server_id[:63],
            labels={"stellar.server": spec.server_id, "stellar.node": self.node_id},
            ports=ports or None,
            network=self._isolate(spec.server_id),
            **hardening(spec, server_dir),
        )
        with self._lock:
            self._handles[spec.server_id] = _Handle(container)

    def start(self, server_id: str) -> None:
        handle = self._get(server_id)
        try:
            handle.container.start()
        except Exception as exc:
            raise RuntimeError_(f"container failed to start: {exc}") from None
        handle.started_at, handle.cpu = time.time(), None

    def output(self, server_id: str, from_start: bool = True) -> Iterator[bytes]:
        handle = self._get(server_id)
        stream = handle.container.logs(
            stdout=True, stderr=True, stream=True, follow=True, tail="all" if from_start else 0
        )
        handle.streams.append(stream)
        try:
            yield from stream
        except Exception as exc:  # the stream is closed by detach(): end quietly
            log.debug("log stream of %s ended: %s", server_id, exc)
        finally:
            try:
                stream.close()
            except Exception:
                pass

    def _stdin(self, handle: _Handle) -> Any:
        if handle.stdin is None:
            sock = self.client.api.attach_socket(
                handle.container.id, params={"stdin": 1, "stdout": 0, "stderr": 0, "stream": 1}
            )
            handle.stdin = getattr(sock, "_sock", sock)
        return handle.stdin

    def write_stdin(self, server_id: str, data: bytes) -> None:
        handle = self._get(server_id)
        with handle.lock:
            try:
                self._stdin(handle).sendall(data)
            except OSError:
                handle.stdin = None  # stale socket (e.g. container restarted): reopen once
                self._stdin(handle).sendall(data)

    def signal(self, server_id: str, signame: str) -> None:
        try:
            self._get(server_id).container.kill(signal=signame)
        except Exception as exc:
            raise RuntimeError_(f"cannot signal container: {exc}") from None

    def kill(self, server_id: str) -> None:
        import docker

        try:
            self._get(server_id).container.kill()
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running any more
                raise RuntimeError_(f"cannot kill container: {exc}") from None

    def wait(self, server_id: str) -> int:
        result = self._get(server_id).container.wait()
        return int(result.get("StatusCode", -1))

    def is_running(self, server_id: str) -> bool:
        container = self._find(server_id)
        if container is None:
            return False
        return container.status == "running"

    def started_at(self, server_id: str) -> str | None:
        container = self._find(server_id)
        return None if container is None else container.attrs["State"]["StartedAt"]

    def attach(self, spec: ServerSpec, server_dir: Path) -> bool:
        container = self._find(spec.server_id)
        if container is None or container.status != "running":
            return False
        handle = _Handle(container)
        handle.started_at = _epoch(container.attrs.get("State", {}).get("StartedAt", ""))
        with self._lock:
            self._handles[spec.server_id] = handle
        return True

    def stats(self, server_id: str) -> Sample | None:
        """One-shot stats (no 1 s wait); CPU % from the delta with our previous reading."""
        with self._lock:
            handle = self._handles.get(server_id)
        if handle is None:
            return None
        try:
            raw = self.client.api.stats(handle.container.id, stream=False, one_shot=True)
        except Exception as exc:
            log.debug("stats of %s failed: %s", server_id, exc)
            return None
        cpu_stats = raw.get("cpu_stats") or {}
        total = int((cpu_stats.get("cpu_usage") or {}).get("total_usage") or 0)
        system = int(cpu_stats.get("system_cpu_usage") or 0)
        cpus = int(cpu_stats.get("online_cpus") or os.cpu_count() or 1)
        percent = 0.0
        if handle.cpu is not None and system > handle.cpu[1] and total >= handle.cpu[0]:
            percent = (total - handle.cpu[0]) / (system - handle.cpu[1]) * cpus * 100.0
        handle.cpu = (total, system)
        mem = raw.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))  # cgroup v2 / v1
        nets = (raw.get("networks") or {}).values()
        if not mem.get("usage") and not total:
            return None  # not running: Docker answers with an empty reading
        return Sample(
            cpu_percent=round(percent, 2),
            memory_bytes=max(int(mem.get("usage") or 0) - int(cache or 0), 0),
            memory_limit_bytes=int(mem.get("limit") or 0),
            rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in nets),
            tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in nets),
            uptime_s=max(time.time() - handle.started_at, 0.0) if handle.started_at else 0.0,
        )

    def oom_killed(self, server_id: str) -> bool:
        try:
            container = self._get(server_id).container
            container.reload()
            return bool(container.attrs["State"].get("OOMKilled"))
        except Exception:
            return False

    def detach(self, server_id: str) -> None:
        with self._lock:
            handle = self._handles.pop(server_id, None)
        if handle is None:
            return
        for stream in handle.streams:
            try:
                stream.close()
            except Exception:
                pass
        if handle.stdin is not None:
            try:
                handle.stdin.shutdown(socket.SHUT_RDWR)
                handle.stdin.close()
            except OSError:
                pass

    def remove(self, server_id: str) -> None:
        self.detach(server_id)
        container = self._find(server_id)
        if container is not None:
            container.remove(force=True)
        for stale in self.client.containers.list(all=True, filters={"label": [f"stellar.install={server_id}"]}):
            stale.remove(force=True)
        self.networks.remove(server_id)

    # ---- install ------------------------------------------------------------------
    def run_install(self, spec: ServerSpec, server_dir: Path, on_line: Callable[[str], None]) -> int:
        """A throw-away container runs the script, which is mounted read-only from a temp dir.

        Passing the script as a file (not ``sh -c TEXT``) keeps it out of ``docker inspect``
        argv, lifts the argv size limit, and the read-only mount means the script cannot
        rewrite itself or be swapped by the server files.
        """
        assert spec.install is not None
        self._check_image(spec.install.image)
        scratch = server_dir.parent.parent / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        script_dir = Path(tempfile.mkdtemp(prefix=f"install-{spec.server_id}-", dir=scratch))
        container = None
        try:
            script = script_dir / "install.sh"
            script.write_text(spec.install.script, encoding="utf-8")
            os.chmod(script, 0o644)
            os.chmod(script_dir, 0o755)
            from docker.types import Mount

            opts = hardening(spec, server_dir)
            opts["mounts"] = [
                *opts["mounts"],
                Mount(target=INSTALL_MOUNT, source=str(script_dir), type="bind", read_only=True),
            ]
            opts["stdin_open"] = False
            opts["read_only"] = False  # installers write outside the server dir (Wings' advice)
            old = self.client.containers.list(all=True, filters={"label": [f"stellar.install={spec.server_id}"]})
            for stale in old:
                stale.remove(force=True)
            container = self.client.containers.create(
                spec.install.image,
                entrypoint=[spec.install.entrypoint],
                command=[f"{INSTALL_MOUNT}/install.sh"],
                name=f"stellar-install-{spec.server_id}",
                labels={
                    "stellar.install": spec.server_id,
                    "stellar.server": spec.server_id,
                    "stellar.node": self.node_id,
                },
                network=self._isolate(spec.server_id),  # the server's own network, not docker0
                **opts,
            )
            container.start()
            splitter = LineSplitter()
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
                for line in splitter.feed(chunk):
                    on_line(line)
            for line in splitter.flush():
                on_line(line)
            return int(container.wait().get("StatusCode", -1))
        except RuntimeError_:
            raise
        except Exception as exc:
            raise RuntimeError_(f"install container failed: {exc}") from None
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except Exception:
                    log.warning("could not remove install container of %s", spec.server_id)
            shutil.rmtree(script_dir, ignore_errors=True)

    def close(self) -> None:
        for server_id in list(self._handles):
            self.detach(server_id)
        try:
            self.client.close()
        except Exception:
            pass
