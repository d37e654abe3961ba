"""Production behaviour over a real broker: the cost rule, stats, heartbeat, limits, OOM,
ports, a broker restart mid-stream with queued commands, and TLS to the broker."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stellar_protocol.messages import Limits, Port, StopSpec

from .conftest import Harness, Mosquitto, demo_spec

pytestmark = pytest.mark.broker
SID = "srv-ops"


def test_cost_rule_stats_and_heartbeat(harness_factory: Callable[..., Harness], runtime_name: str) -> None:
    node = harness_factory(runtime_name, stats_interval_s=0.2, heartbeat_s=1)
    node.start_agent()
    obs = node.observer
    assert obs.ack(node.install(SID))["ok"]
    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    assert obs.ack(node.console(SID, "say unseen"))["ok"]
    beat = obs.wait_for(lambda: [s for s in obs.node_status() if (s.get("servers") or {}).get(SID) == "running"],
                        what="heartbeat with the server's state")[0]
    assert beat["heartbeat_s"] == 1 and beat["uptime_s"] >= 0
    time.sleep(0.5)
    assert obs.consoles(SID) == [] and obs.stats(SID) == []  # nobody watches: nothing but state

    until = time.time() + 2.5
    node.view(SID, seconds=2.5)
    assert obs.ack(node.console(SID, "say seen"))["ok"]
    obs.wait_line("[Server] seen")
    assert not any("unseen" in ln for ln in obs.console_lines(SID))
    stats = obs.wait_for(lambda: obs.stats(SID)[2:], what="stats")
    last = stats[-1]
    assert last["memory_bytes"] > 0 and last["memory_limit_bytes"] == 64 * 1024 * 1024
    assert last["uptime_s"] > 0 and last["disk_bytes"] > 0 and last["disk_limit_bytes"] == 64 * 1024 * 1024
    if runtime_name == "docker":
        assert last["rx_bytes"] >= 0 and "cpu_percent" in last

    time.sleep(max(until - time.time(), 0) + 1.5)  # expired, and any sample in flight has landed
    mark_stats, mark_console = len(obs.stats(SID)), len(obs.consoles(SID))
    assert obs.ack(node.console(SID, "say expired"))["ok"]
    time.sleep(0.6)
    assert len(obs.stats(SID)) == mark_stats and len(obs.consoles(SID)) == mark_console
    # states always flow
    assert obs.ack(node.power(SID, "stop"))["ok"]
    assert obs.states(SID)[-1]["state"] == "offline"


@pytest.mark.docker
def test_disk_limit_refuses_start_and_stops_a_running_server(
    harness_factory: Callable[..., Harness], demo_image: str
) -> None:
    node = harness_factory("docker", disk_check_interval_s=0.5)
    node.start_agent()
    obs = node.observer
    spec = demo_spec(SID)
    spec = spec.model_copy(update={"limits": spec.limits.model_copy(update={"disk_mb": 1})})
    assert obs.ack(node.install(SID, spec))["ok"]
    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    mark = len(obs.states(SID))
    (node.config.volumes_dir / SID / "world.dat").write_bytes(b"\1" * 2 * 1024 * 1024)  # the game "writes"
    stopped = obs.wait_state("offline", SID, after=mark)
    assert stopped["detail"].startswith("disk limit exceeded: 2.")
    assert "stopping" in obs.state_names(SID)[mark:]  # stopped gracefully, not killed outright
    refused = obs.ack(node.power(SID, "start"))
    assert not refused["ok"] and "disk limit exceeded" in refused["error"]
    (node.config.volumes_dir / SID / "world.dat").unlink()
    assert obs.ack(node.power(SID, "start"))["ok"]


@pytest.mark.docker
def test_oom_is_reported(harness_factory: Callable[..., Harness], demo_image: str) -> None:
    node = harness_factory("docker")
    node.start_agent()
    obs = node.observer
    spec = demo_spec(SID).model_copy(update={
        "install": None, "done": [],
        "startup": 'a=xxxxxxxxxxxxxxxx; while :; do a="$a$a"; done',
        "limits": Limits(memory_mb=16, cpu_percent=100, disk_mb=16, pids=64),
    })
    assert obs.ack(node.install(SID, spec))["ok"]
    assert obs.ack(node.power(SID, "start"))["ok"]
    crashed = obs.wait_for(lambda: [s for s in obs.states(SID) if (s.get("detail") or "").startswith("crashed")],
                           what="crash")[0]
    assert crashed["detail"] == "crashed (exit 137, out of memory)"


@pytest.mark.docker
def test_ports_swap_and_read_only_root(harness_factory: Callable[..., Harness], demo_image: str) -> None:
    node = harness_factory("docker")
    node.start_agent()
    obs = node.observer
    port = 25000 + int(time.time()) % 5000
    spec = demo_spec(SID).model_copy(update={
        "install": None, "done": [], "startup": "exec sleep 600", "read_only_root": True,
        "stop": StopSpec(type="signal", value="SIGKILL"),
        "ports": [Port(ip="127.0.0.1", port=port, protocol="tcp"), Port(ip="127.0.0.1", port=port, protocol="udp")],
        "limits": Limits(memory_mb=32, swap_mb=16, cpu_percent=150, disk_mb=16),
    })
    assert obs.ack(node.install(SID, spec))["ok"]
    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    container = docker.from_env().containers.get(f"stellar-{SID}")
    host = container.attrs["HostConfig"]
    assert host["PortBindings"] == {
        f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
        f"{port}/udp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
    }
    assert host["Memory"] == 32 << 20 and host["MemorySwap"] == 48 << 20
    assert host["NanoCpus"] == 1_500_000_000 and host["PidsLimit"] == 512
    assert host["ReadonlyRootfs"] is True
    code, _ = container.exec_run(["sh", "-c", "echo x > /etc/x"])
    assert code != 0  # the image is read-only
    code, _ = container.exec_run(["sh", "-c", "echo x > /home/container/x && echo y > /tmp/y"])
    assert code == 0  # the server dir and /tmp are not
    assert obs.ack(node.power(SID, "kill"))["ok"]


def test_broker_restart_mid_stream_and_with_queued_commands(
    harness_factory: Callable[..., Harness], tmp_path: Path
) -> None:
    """Console batches made while the broker is down and commands queued in the agent's
    persistent session across a second broker restart: none lost, none run twice."""
    mosq = Mosquitto(tmp_path, persistence=True)
    # a fixed 3 s reconnect delay leaves a window in which the agent is surely away
    node = harness_factory("process", at=mosq.address, observer={"persistent": True},
                           reconnect_min_s=3, reconnect_max_s=3, console_batch_ms=20)
    agent = node.start_agent()
    obs = node.observer
    node.view(SID)
    spec = demo_spec(SID)
    ticker = "(i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done) & exec sh ./game.sh"
    assert obs.ack(node.install(SID, spec.model_copy(update={"startup": ticker})))["ok"]
    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    obs.wait_line("tick 10")
    seq_before = obs.states(SID)[-1]["seq"]

    try:
        mosq.stop()  # restart 1: in the middle of the console stream
        time.sleep(0.5)
        mosq.start()
        obs.wait_for(lambda: obs.client.is_connected(), what="observer back")
        connects = agent.connects
        commands = [node.console(SID, f"say queued-{k}") for k in range(5)]  # agent is away: queued
        time.sleep(0.2)
        mosq.stop()  # restart 2: the queued commands must survive in the broker's store
        mosq.start()
        assert agent.connects == connects, "the agent reconnected too early for this scenario"
        assert agent.wait_connected(15)
        for cid in commands:
            obs.ack(cid)
        for k in range(5):
            obs.wait_line(f"[Server] queued-{k}")
        obs.wait_for(lambda: obs.states(SID)[-1]["seq"] > seq_before, what="state re-reported")
        assert obs.states(SID)[-1]["state"] == "running"
        time.sleep(0.5)
    finally:
        assert obs.ack(node.power(SID, "kill"))["ok"]
        node.stop_agent()
        mosq.stop()
    for cid in commands:
        assert [a["ok"] for a in obs.acks_for(cid) if not a.get("duplicate")] == [True]
    said = Counter(ln for ln in obs.console_lines(SID) if ln.startswith("[Server] queued-"))
    assert said == {f"[Server] queued-{k}": 1 for k in range(5)}  # each ran exactly once
    ticks = sorted({int(ln.split()[1]) for ln in obs.console_lines(SID) if ln.startswith("tick ")})
    assert ticks == list(range(ticks[0], ticks[-1] + 1)) and len(ticks) > 50  # no gap in the stream


def _certs(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all fresh."""

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, k: ec.EllipticCurvePrivateKey, issuer: str, ik: ec.EllipticCurvePrivateKey,
             ca: bool = False, san: x509.GeneralName | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san is not None:
            b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return b.sign(ik, hashes.SHA256())

    ca_key, srv_key, cli_key = key(), key(), key()
    files = {
        "ca": cert("test-ca", ca_key, "test-ca", ca_key, ca=True),
        "server": cert("127.0.0.1", srv_key, "test-ca", ca_key, san=x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        "client": cert("node", cli_key, "test-ca", ca_key),
    }
    out: dict[str, Path] = {}
    for label, c in files.items():
        out[label] = root / f"{label}.crt"
        out[label].write_bytes(c.public_bytes(serialization.Encoding.PEM))
    for label, k in (("server_key", srv_key), ("client_key", cli_key)):
        out[label] = root / f"{label}.pem"
        out[label].write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return out


def test_tls_to_the_broker_with_client_certificates(harness_factory: Callable[..., Harness], tmp_path: Path) -> None:
    c = _certs(tmp_path)
    mosq = Mosquitto(tmp_path, extra=(f"cafile {c['ca']}\ncertfile {c['server']}\nkeyfile {c['server_key']}\n"
                                      "require_certificate true\n"))
    try:
        tls = {"ca_certs": str(c["ca"]), "certfile": str(c["client"]), "keyfile": str(c["client_key"])}
        node = harness_factory("process", at=mosq.address, observer={"tls": tls}, broker_tls=True,
                               broker_ca=c["ca"], broker_cert=c["client"], broker_key=c["client_key"])
        node.start_agent()
        assert node.observer.ack(node.view(SID))["ok"]
        status = node.observer.wait_for(lambda: node.observer.node_status(), what="status over TLS")
        assert status[-1]["status"] == "online"
        node.stop_agent()

        # without a client certificate the broker refuses the agent; it keeps retrying
        anon = harness_factory("process", at=mosq.address, observer={"tls": tls}, broker_tls=True,
                               broker_ca=c["ca"], reconnect_min_s=0.2, reconnect_max_s=0.5)
        agent = anon.start_agent(wait=False)
        assert not agent.wait_connected(2)
        assert agent.backoff.attempt >= 2
        anon.stop_agent()
        assert json.loads(json.dumps(anon.observer.node_status())) == []
    finally:
        mosq.stop()
