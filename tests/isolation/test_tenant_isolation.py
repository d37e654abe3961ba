"""Isolation between tenants on a Docker node, probed from inside real game-server containers.

Every probe that must fail has a control that must succeed (the same listener reached from a
container outside our networks, or from the server itself), so a broken probe cannot pass.
Test traffic goes only to containers created here, to listeners this test opens on addresses of
bridges the agent created, and to link-local addresses on a veth pair this test creates.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stellar_agent.runtime.docker import DockerRuntime, container_name
from stellar_agent.runtime.network import INPUT_CHAIN, Firewall, bridge_name, network_name
from stellar_protocol.blueprint import load_catalogue
from stellar_protocol.messages import Port, ServerSpec

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
# A veth pair of our own: the host end gets one link-local address (INPUT path), the far end sits
# in a network namespace of our own with another (FORWARD path, like a metadata service off-host).
VETH_HOST, VETH_NS, NETNS = "llprobe0", "llprobe1", "stellar-llprobe"
LL_HOST, LL_FAR = "169.254.77.2", "169.254.77.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


class Listener:
    """A tiny HTTP server on ``host`` answering with a token, so a probe proves what it reached."""

    def __init__(self, host: str) -> None:
        token = self.token = f"reached-{uuid.uuid4().hex[:8]}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = token.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fetch(container: Any, url: str) -> str | None:
    """The body a container gets from ``url`` (an HTTP/1.0 GET over busybox nc, 3 s timeout), or None.

    busybox nc rather than wget: the static busybox's wget crashes without the host's NSS files.
    """
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    code, out = container.exec_run(
        ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {host} {port}"])
    head, sep, body = out.decode(errors="replace").partition("\r\n\r\n")
    return body if code == 0 and sep and head.startswith("HTTP/1.") else None


def spec_for(server_id: str, port: int) -> ServerSpec:
    """The demo blueprint's limits, serving one page on its allocated port with busybox httpd."""
    base = load_catalogue(REPO / "blueprints")["demo"].to_spec(server_id, {"SERVER_NAME": "Iso"})
    startup = (f"mkdir -p www && echo page-of-{server_id} > www/index.html && "
               f"exec busybox httpd -f -p {port} -h www")
    return base.model_copy(update={"startup": startup, "install": None,
                                   "ports": [Port(ip="127.0.0.1", port=port)]})


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    from stellar.images import docker_available, ensure_demo_image

    if not docker_available():
        pytest.skip("no Docker engine")
    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("the tenant firewall needs root and iptables")
    ensure_demo_image(progress=lambda _msg: None)
    import docker

    client = docker.from_env(timeout=60)
    yield client
    # The chains are the node's, shared by every server: removed only when no server network is left.
    if not client.networks.list(filters={"label": "stellar.server"}):
        Firewall().remove()
    client.close()


@pytest.fixture(scope="module")
def servers(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two servers of one node, each running httpd on its published port, plus a control container."""
    node_id = f"iso{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(node_id, client=docker_client, require_firewall=True)
    made: dict[str, Any] = {"runtime": runtime, "node_id": node_id}
    control = None
    try:
        for key in ("a", "b"):
            sid = f"{node_id}-{key}"
            port = _free_port()
            server_dir = tmp_path_factory.mktemp(sid)
            os.chown(server_dir, 1000, 1000)
            runtime.create(spec_for(sid, port), server_dir)
            runtime.start(sid)
            container = docker_client.containers.get(container_name(sid))
            network = docker_client.networks.get(network_name(sid))
            made[key] = {
                "id": sid, "port": port, "container": container, "network": network,
                "ip": container.attrs["NetworkSettings"]["Networks"][network_name(sid)]["IPAddress"],
                "gateway": network.attrs["IPAM"]["Config"][0]["Gateway"],
            }
        # The control: the same image on Docker's default bridge, outside every rule of ours.
        control = docker_client.containers.run("stellarstack/demo-game:1", ["sleep", "300"], detach=True,
                                               labels={"stellar.node": node_id}, network_mode="bridge")
        made["control"] = control
        for key in ("a", "b"):
            _wait_serving(made[key]["container"], made[key]["port"], made[key]["id"])
        yield made
    finally:
        if control is not None:
            control.remove(force=True)
        for key in ("a", "b"):
            if key in made:
                runtime.remove(made[key]["id"])
        runtime.close()


def _wait_serving(container: Any, port: int, sid: str) -> None:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if fetch(container, f"http://127.0.0.1:{port}/") == f"page-of-{sid}\n":
            return
        time.sleep(0.2)
    raise AssertionError(f"{sid} never served its page: {container.logs()[-500:]!r}")


@pytest.fixture
def link_local() -> Iterator[dict[str, Listener]]:
    """Listeners on link-local addresses of a veth pair this test creates, removed afterwards."""
    _ip("link", "del", VETH_HOST, check=False)
    _ip("netns", "del", NETNS, check=False)
    far_proc = None
    host_listener = None
    try:
        _ip("netns", "add", NETNS)
        _ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        _ip("link", "set", VETH_NS, "netns", NETNS)
        _ip("addr", "add", f"{LL_HOST}/32", "dev", VETH_HOST)
        _ip("link", "set", VETH_HOST, "up")
        _ip("route", "add", f"{LL_FAR}/32", "dev", VETH_HOST)
        _ip("netns", "exec", NETNS, "ip", "addr", "add", f"{LL_FAR}/32", "dev", VETH_NS)
        _ip("netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up")
        _ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        _ip("netns", "exec", NETNS, "ip", "route", "add", "default", "dev", VETH_NS)
        host_listener = Listener(LL_HOST)
        far_port = _free_port()
        far_proc = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, "python3", "-c",
             "import http.server as h, sys\n"
             "class H(h.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        self.send_response(200); self.send_header('Content-Length', '3'); self.end_headers()\n"
             "        self.wfile.write(b'far')\n"
             "    def log_message(self, *a): pass\n"
             f"h.HTTPServer(('{LL_FAR}', {far_port}), H).serve_forever()\n"],
        )
        far = Listener.__new__(Listener)
        far.token, far.url = "far", f"http://{LL_FAR}:{far_port}/"
        yield {"host": host_listener, "far": far}
    finally:
        if far_proc is not None:
            far_proc.kill()
            far_proc.wait(5)
        if host_listener is not None:
            host_listener.close()
        _ip("link", "del", VETH_HOST, check=False)
        _ip("netns", "del", NETNS, check=False)


def _eventually(probe: Any, want: str, tries: int = 25) -> str | None:
    """The control side may need a moment (a listener starting in the namespace)."""
    import time

    got = None
    for _ in range(tries):
        got = probe()
        if got == want:
            return got
        time.sleep(0.2)
    return got


def test_each_server_has_its_own_bridge(servers: dict[str, Any]) -> None:
    for key in ("a", "b"):
        net = servers[key]["network"]
        options = net.attrs["Options"]
        assert options["com.docker.network.bridge.enable_icc"] == "false"
        assert options["com.docker.network.bridge.name"] == bridge_name(servers[key]["id"])
        attached = servers[key]["container"].attrs["NetworkSettings"]["Networks"]
        assert list(attached) == [network_name(servers[key]["id"])]
    assert servers["a"]["network"].id != servers["b"]["network"].id
    assert Firewall().installed()


def test_own_published_port_works_from_the_host(servers: dict[str, Any]) -> None:
    for key in ("a", "b"):
        with socket.create_connection(("127.0.0.1", servers[key]["port"]), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        assert data.endswith(f"page-of-{servers[key]['id']}\n".encode())


def test_cannot_reach_another_servers_container(servers: dict[str, Any]) -> None:
    a, b = servers["a"], servers["b"]
    url_b = f"http://{b['ip']}:{b['port']}/"
    # Control: B answers on that address (from itself), so a failure from A is the isolation.
    assert fetch(b["container"], url_b) == f"page-of-{b['id']}\n"
    assert fetch(a["container"], url_b) is None
    assert fetch(b["container"], f"http://{a['ip']}:{a['port']}/") is None


def test_cannot_reach_the_node_through_the_gateway(servers: dict[str, Any]) -> None:
    a = servers["a"]
    listener = Listener(a["gateway"])  # the host's address on A's own bridge, like a node service
    try:
        assert _eventually(lambda: fetch(servers["control"], listener.url), listener.token) == listener.token
        assert fetch(a["container"], listener.url) is None
        # The block is ours: without the chain the same probe gets through, and then not again.
        fw = Firewall()
        fw.remove()
        try:
            assert fetch(a["container"], listener.url) == listener.token
        finally:
            fw.ensure()
        assert fetch(a["container"], listener.url) is None
    finally:
        listener.close()


def test_docker_socket_is_absent(servers: dict[str, Any]) -> None:
    for key in ("a", "b"):
        container = servers[key]["container"]
        container.reload()
        mounts = [m["Source"] for m in container.attrs["Mounts"]]
        assert not any("docker.sock" in m for m in mounts), mounts
        assert not any("DOCKER_HOST" in e for e in container.attrs["Config"]["Env"] or [])
        for path in ("/var/run/docker.sock", "/run/docker.sock"):
            code, _ = container.exec_run(["busybox", "test", "-e", path])
            assert code == 1, path
        code, _ = container.exec_run(["busybox", "test", "-e", "/home/container/www/index.html"])
        assert code == 0  # the same check does see files that exist


def test_link_local_is_blocked(servers: dict[str, Any], link_local: dict[str, Listener]) -> None:
    a, control = servers["a"]["container"], servers["control"]
    for where in ("host", "far"):  # on the node itself (INPUT) and beyond it (FORWARD)
        target = link_local[where]
        assert _eventually(lambda t=target: fetch(control, t.url), target.token) == target.token, where
        assert fetch(a, target.url) is None, where


def test_delete_removes_the_network(docker_client: Any, tmp_path: Path) -> None:
    import docker

    runtime = DockerRuntime(f"iso{uuid.uuid4().hex[:8]}", client=docker_client, require_firewall=True)
    sid = f"{runtime.node_id}-gone"
    os.chown(tmp_path, 1000, 1000)
    try:
        runtime.create(spec_for(sid, _free_port()), tmp_path)
        assert docker_client.networks.get(network_name(sid))
    finally:
        runtime.remove(sid)
    with pytest.raises(docker.errors.NotFound):
        docker_client.networks.get(network_name(sid))
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_name(sid))
    runtime.remove(sid)  # idempotent


def test_firewall_is_idempotent_and_removable() -> None:
    fw = Firewall()
    fw.ensure()
    fw.ensure()
    rules = subprocess.run(["iptables", "-S", INPUT_CHAIN], capture_output=True, text=True).stdout
    assert rules.count("-j DROP") == 1
    hooks = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    assert hooks.count(f"-j {INPUT_CHAIN}") == 1
    fw.remove()
    assert not fw.installed()
    assert subprocess.run(["iptables", "-S", INPUT_CHAIN], capture_output=True).returncode != 0
    fw.ensure()  # leave the node as the agent would
    assert fw.installed()
