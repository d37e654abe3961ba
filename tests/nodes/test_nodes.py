"""Nodes and locations through the admin API, a real agent enrolling into a running stack,
offline detection within 10 s, placement, the race for the last ports, deletion while a
node is offline, and status ordering. Every test talks HTTP to the stack and MQTT to its
broker; agents run as real `stellar-agent` processes where killing one matters."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from stellar_protocol.messages import NodeStatus

BIN = Path(sys.executable).parent
OFFLINE_BOUND_S = 10.0  # the bound: a dead node shows offline within 10 s


@pytest.fixture(scope="module")
def admin(make_user):
    return make_user(admin=True)


def _wait(fn, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _patch(user, path, body):
    return requests.patch(f"{user.base}{path}", json=body, headers=user.headers, timeout=15)


def _location(admin) -> str:
    r = admin.post("/admin/locations", {"name": f"Loc {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _node(admin, location_id: str, **over) -> dict:
    body = {"name": "n", "location_id": location_id, "address": "127.0.0.1", "memory_mb": 4096,
            "disk_mb": 20_000, "port_start": 32000, "port_end": 32009}
    body.update(over)
    r = admin.post("/admin/nodes", body)
    assert r.status_code == 201, r.text
    return r.json()


def _mark_online(node_id: str) -> None:
    """A node with no agent behind it, announced online with a long heartbeat (placement tests)."""
    from chalicelib.services import nodes

    nodes.record_status(node_id, NodeStatus(status="online", heartbeat_s=3600, session=time.time(), servers={}))


class EnrolledAgent:
    """`stellar-agent enroll` then `stellar-agent run`, as an admin would on a new machine."""

    def __init__(self, admin, node_id: str, tmp: Path) -> None:
        self.admin, self.node_id, self.tmp = admin, node_id, tmp
        r = admin.post(f"/admin/nodes/{node_id}/enrollment")
        assert r.status_code == 201, r.text
        self.enrollment = r.json()
        self.config = tmp / "agent.yaml"
        self.proc: subprocess.Popen | None = None

    def enroll(self) -> subprocess.CompletedProcess:
        panel = self.admin.base.removesuffix("/api")
        return subprocess.run([str(BIN / "stellar-agent"), "enroll", "--panel", panel, "--token",
                               self.enrollment["token"], "--config", str(self.config), "--data-dir",
                               str(self.tmp / "data"), "--runtime", "process"],
                              capture_output=True, text=True, timeout=60)

    def run(self) -> None:
        self.log = open(self.tmp / "agent.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(BIN / "stellar-agent"), "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def status(self) -> dict:
        return self.admin.get(f"/admin/nodes/{self.node_id}").json()


def test_admin_routes_are_invisible_to_other_users(owner):
    for method, path in (("GET", "/admin/nodes"), ("POST", "/admin/nodes"), ("GET", "/admin/locations"),
                         ("POST", "/admin/locations"), ("POST", "/admin/users")):
        r = owner.get(path) if method == "GET" else owner.post(path, {})
        assert r.status_code == 404, (method, path, r.status_code)


def test_locations_and_nodes_crud_with_validation(admin):
    loc = _location(admin)
    assert any(x["id"] == loc for x in admin.get("/admin/locations").json())
    assert _patch(admin, f"/admin/locations/{loc}", {"name": "Renamed"}).json()["name"] == "Renamed"
    bad = admin.post("/admin/nodes", {"name": "n", "location_id": "nowhere", "address": "10.0.0.1",
                                      "memory_mb": 1024, "disk_mb": 1024, "port_start": 2, "port_end": 1})
    assert bad.status_code == 422
    bad = admin.post("/admin/nodes", {"name": "n", "location_id": "nowhere", "address": "10.0.0.1",
                                      "memory_mb": 1024, "disk_mb": 1024, "port_start": 1, "port_end": 2})
    assert bad.status_code == 422 and "location_id" in bad.json()["error"]["fields"]
    node = _node(admin, loc, port_ranges=[[40000, 40004]], overallocate_percent=25, addresses=["203.0.113.9"])
    assert node["status"] == "offline" and node["last_seen"] is None
    assert node["port_ranges"] == [[40000, 40004]] and node["addresses"] == ["203.0.113.9"]
    changed = _patch(admin, f"/admin/nodes/{node['id']}", {"memory_mb": 8192, "name": "big"}).json()
    assert changed["memory_mb"] == 8192 and changed["name"] == "big" and changed["disk_mb"] == 20_000
    assert admin.delete(f"/admin/locations/{loc}").status_code == 409  # it still has a node
    assert admin.delete(f"/admin/nodes/{node['id']}").status_code == 200
    assert admin.get(f"/admin/nodes/{node['id']}").status_code == 404
    assert admin.delete(f"/admin/locations/{loc}").status_code == 200


def test_a_node_with_servers_cannot_be_deleted(stack, admin, owner):
    r = owner.post("/servers", {"name": "Pinned", "blueprint_id": "demo", "location_id": "local"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        r = admin.delete(f"/admin/nodes/{stack.opts.node_id}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "in_use"
        assert admin.get(f"/admin/nodes/{stack.opts.node_id}").json()["status"] == "online"
    finally:
        assert owner.delete(f"/servers/{sid}").status_code == 202


def test_enrollment_and_offline_detection(admin, tmp_path):
    """A new machine joins with the printed command; killing it shows offline within 10 s."""
    loc = _location(admin)
    node = _node(admin, loc)
    agent = EnrolledAgent(admin, node["id"], tmp_path)
    assert agent.enrollment["token"] in agent.enrollment["command"]
    assert "stellar-agent enroll --panel http" in agent.enrollment["command"]
    try:
        done = agent.enroll()
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(agent.config.stat().st_mode) == 0o600
        # One-time: the same token is refused afterwards, as is a made-up one.
        again = requests.post(f"{admin.base}/nodes/register", json={"token": agent.enrollment["token"]}, timeout=10)
        assert again.status_code == 401
        forged = requests.post(f"{admin.base}/nodes/register", json={"token": f"{node['id']}.not-the-secret"},
                               timeout=10)
        assert forged.status_code == 401
        agent.run()
        up = _wait(lambda: (s := agent.status())["status"] == "online" and s, 20, "the enrolled node online")
        assert up["last_seen"] is not None and up["runtime"] == "process" and up["enrolled_at"] is not None

        # Frozen: the TCP connection stays open but nothing flows (no clean disconnect, no FIN).
        frozen_at = time.monotonic()
        agent.signal(signal.SIGSTOP)
        _wait(lambda: agent.status()["status"] == "offline", OFFLINE_BOUND_S, "offline after SIGSTOP")
        assert time.monotonic() - frozen_at <= OFFLINE_BOUND_S
        agent.signal(signal.SIGCONT)  # it notices the broker dropped it and comes back
        _wait(lambda: agent.status()["status"] == "online", 20, "online again after SIGCONT")

        killed_at = time.monotonic()
        agent.signal(signal.SIGKILL)
        _wait(lambda: agent.status()["status"] == "offline", OFFLINE_BOUND_S, "offline after SIGKILL")
        assert time.monotonic() - killed_at <= OFFLINE_BOUND_S
    finally:
        agent.stop()
    assert admin.delete(f"/admin/nodes/{node['id']}").status_code == 200


def test_placement_respects_capacity_and_over_allocation(admin, owner):
    loc = _location(admin)
    small = _node(admin, loc, name="small", memory_mb=1024, port_start=33000, port_end=33009)
    big = _node(admin, loc, name="big", memory_mb=2048, port_start=33100, port_end=33109)
    for n in (small, big):
        _mark_online(n["id"])
    created = []
    try:
        placed = []
        for _ in range(3):  # 1 GB each: the node with the most free memory is chosen every time
            r = owner.post("/servers", {"name": "P", "blueprint_id": "demo", "location_id": loc, "memory_mb": 1024})
            assert r.status_code == 201, r.text
            created.append(r.json()["id"])
            placed.append(r.json()["node_id"])
        assert sorted(placed) == sorted([big["id"], big["id"], small["id"]])
        full = owner.post("/servers", {"name": "P", "blueprint_id": "demo", "location_id": loc, "memory_mb": 1024})
        assert full.status_code == 503 and full.json()["error"]["code"] == "no_capacity"
        # 100 % over-allocation doubles what the small node may hold.
        assert _patch(admin, f"/admin/nodes/{small['id']}", {"overallocate_percent": 100}).status_code == 200
        r = owner.post("/servers", {"name": "P", "blueprint_id": "demo", "location_id": loc, "memory_mb": 1024})
        assert r.status_code == 201 and r.json()["node_id"] == small["id"], r.text
        created.append(r.json()["id"])
    finally:
        for sid in created:
            owner.delete(f"/servers/{sid}")


def test_concurrent_creates_race_for_the_last_ports(admin, owner, make_user):
    loc = _location(admin)
    node = _node(admin, loc, memory_mb=65536, disk_mb=1_000_000, cpu_percent=100_000, port_start=34000,
                 port_end=34002)
    _mark_online(node["id"])
    users = [owner] + [make_user() for _ in range(2)]

    def create(i: int) -> requests.Response:
        return users[i % len(users)].post("/servers", {"name": f"R{i}", "blueprint_id": "demo", "location_id": loc,
                                                       "memory_mb": 64})

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(8)))
    won = [r.json() for r in answers if r.status_code == 201]
    lost = [r for r in answers if r.status_code != 201]
    assert len(won) == 3, [r.text for r in answers]
    assert {r.status_code for r in lost} <= {503, 409}
    ports = [p["port"] for s in won for p in s["ports"]]
    assert sorted(ports) == [34000, 34001, 34002]  # every port handed out exactly once
    from chalicelib.store import get_store

    allocs = get_store().as_admin("test").allocations(node["id"])
    assert sorted(a.port for a in allocs) == [34000, 34001, 34002]
    # The last port: of several racing creates exactly one wins.
    by_owner = {s["id"]: s["owner_id"] for s in won}
    victim = won[0]
    owner_of = next(u for u in users if u.id == by_owner[victim["id"]])
    assert owner_of.delete(f"/servers/{victim['id']}").status_code == 202
    with cf.ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(create, range(5)))
    assert sum(r.status_code == 201 for r in answers) == 1, [r.text for r in answers]
    for user in users:
        for s in user.get("/servers").json():
            if s["location_id"] == loc:
                user.delete(f"/servers/{s['id']}")


def test_status_ordering_old_will_never_beats_new_session():
    """An older connection's last will, delivered late, must not mark a reconnected node offline."""
    from chalicelib.services import nodes
    from chalicelib.store import get_store
    from chalicelib.store.records import Location, Node

    store = get_store().as_admin("test")
    loc = f"ord{uuid.uuid4().hex[:6]}"
    store.create_location(Location(id=loc, name="ordering"))
    node = Node(id=f"ord{uuid.uuid4().hex[:6]}", name="o", location_id=loc, memory_mb=1024, disk_mb=1024,
                port_start=1, port_end=2)
    store.put_node(node)
    t = time.time()
    assert nodes.record_status(node.id, NodeStatus(status="online", session=t, ts=t + 1, heartbeat_s=60))
    assert nodes.record_status(node.id, NodeStatus(status="online", session=t + 10, ts=t + 11, heartbeat_s=60))
    # session t's will arrives late: ignored.
    assert not nodes.record_status(node.id, NodeStatus(status="offline", session=t, ts=t))
    assert store.get_node(node.id).status == "online"
    # An older heartbeat of the current session, redelivered: ignored.
    assert not nodes.record_status(node.id, NodeStatus(status="online", session=t + 10, ts=t + 10.5))
    # The current session's will (dated when it connected, before its heartbeats) wins.
    assert nodes.record_status(node.id, NodeStatus(status="offline", session=t + 10, ts=t + 10))
    assert store.get_node(node.id).status == "offline"
    assert not nodes.record_status(node.id, NodeStatus(status="online", session=t + 10, ts=t + 12))
    # Silence: the sweeper writes a stale node down, a later heartbeat of a new session revives it.
    assert nodes.record_status(node.id, NodeStatus(status="online", session=t + 20, ts=t + 21, heartbeat_s=1))
    assert nodes.sweep(now=time.time() + 5) >= 1
    assert store.get_node(node.id).status == "offline"
    assert nodes.record_status(node.id, NodeStatus(status="online", session=t + 20, ts=t + 22, heartbeat_s=1))
    assert store.get_node(node.id).status == "online"
    store.delete_node(store.get_node(node.id))
    store.delete_location(loc)


def test_delete_while_node_is_offline_finishes_when_it_returns(admin, owner, tmp_path):
    loc = _location(admin)
    node = _node(admin, loc, port_start=35000, port_end=35004)
    agent = EnrolledAgent(admin, node["id"], tmp_path)
    assert agent.enroll().returncode == 0
    agent.run()
    try:
        _wait(lambda: agent.status()["status"] == "online", 20, "node online")
        r = owner.post("/servers", {"name": "Doomed", "blueprint_id": "demo", "location_id": loc})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        _wait(lambda: owner.get(f"/servers/{sid}").json()["status"] == "offline", 60, "installed")
        volume = tmp_path / "data" / "volumes" / sid
        assert volume.exists()

        agent.signal(signal.SIGKILL)
        agent.proc.wait(10)
        _wait(lambda: agent.status()["status"] == "offline", OFFLINE_BOUND_S, "node offline")
        assert owner.delete(f"/servers/{sid}").status_code == 202
        assert owner.get(f"/servers/{sid}").status_code == 404
        from chalicelib.store import get_store

        store = get_store().as_admin("test")
        assert store.allocations(node["id"]) == []  # ports are free at once
        assert store.get_node(node["id"]).pending_deletes == [sid]
        assert volume.exists()  # the node was away: nothing happened there yet

        agent.run()  # it comes back: the deletion is finished there
        _wait(lambda: not volume.exists(), 30, "the server's files removed on the node")
        _wait(lambda: store.get_node(node["id"]).pending_deletes == [], 20, "the pending deletion cleared")
        assert not (tmp_path / "data" / "servers" / f"{sid}.json").exists()
    finally:
        agent.stop()
    assert admin.delete(f"/admin/nodes/{node['id']}").status_code == 200


def test_reconciliation_reports_strays_and_removes_pending_deletes():
    from chalicelib.services import nodes
    from chalicelib.store.records import Node

    node = Node(id=f"rec{uuid.uuid4().hex[:6]}", name="r", location_id="local", memory_mb=1, disk_mb=1,
                port_start=1, port_end=1, pending_deletes=["gone1"])
    report = nodes.reconcile(node, {"gone1": "offline", "stray1": "running"})
    assert report["deleted"] == ["gone1"] and report["unknown"] == ["stray1"]  # a stray is never destroyed
