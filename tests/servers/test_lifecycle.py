"""Lifecycle operations end to end through the API, the broker and a real agent (process runtime):
startup variables, image, reinstall, blueprint switch and allocations. Each change is checked where
it matters: in the store (the API view), in the spec the agent persisted, and on the game's console."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from livewire import Viewer, wait_status

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def admin(make_user):
    return make_user(admin=True)


def _patch(user, path: str, body: object) -> requests.Response:
    return requests.patch(f"{user.base}{path}", json=body, headers=user.headers, timeout=15)


def _wait(fn: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _agent_spec(stack, sid: str) -> dict[str, Any]:
    """The spec as the agent persisted it (what a restarted agent would run)."""
    return json.loads((stack.agent.config.servers_dir / f"{sid}.json").read_text())


def _actions(owner, sid: str) -> list[str]:
    return [e["action"] for e in owner.get(f"/servers/{sid}/activity").json()]


@pytest.fixture()
def server(owner) -> Iterator[str]:
    sid = owner.post("/servers", {"name": "Life", "blueprint_id": "demo", "location_id": "local"}).json()["id"]
    wait_status(owner, sid, "offline")
    yield sid
    owner.delete(f"/servers/{sid}")


@pytest.fixture()
def viewer(owner, server) -> Iterator[Viewer]:
    watch = Viewer(owner.post(f"/servers/{server}/console-grant").json())
    watch.wait_subscribed()
    yield watch
    watch.close()


def test_startup_variables_apply_at_the_next_start(stack, owner, stranger, server, viewer):
    sid = server
    startup = owner.get(f"/servers/{sid}/startup").json()
    var = next(v for v in startup["variables"] if v["env"] == "SERVER_NAME")
    assert var["value"] == "Demo" and var["editable"] is True
    assert var["rules"]["required"] is True and var["rules"]["regex"]
    assert stranger.get(f"/servers/{sid}/startup").status_code == 404

    bad = _patch(owner, f"/servers/{sid}/startup", {"variables": {"SERVER_NAME": "no!way", "NOPE": "x"}})
    assert bad.status_code == 422, bad.text
    assert set(bad.json()["error"]["fields"]) == {"variables.SERVER_NAME", "variables.NOPE"}
    assert owner.get(f"/servers/{sid}/startup").json()["variables"][0]["value"] == "Demo"  # nothing stored

    mark = viewer.mark()
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    viewer.console_line("Starting Demo on port", since=mark)
    wait_status(owner, sid, "running")

    r = _patch(owner, f"/servers/{sid}/startup", {"variables": {"SERVER_NAME": "Brave New"}})
    assert r.status_code == 200, r.text
    assert next(v for v in r.json()["variables"] if v["env"] == "SERVER_NAME")["value"] == "Brave New"
    _wait(lambda: _agent_spec(stack, sid)["environment"]["SERVER_NAME"] == "Brave New", "the agent's new spec")
    assert stack.agent.servers[sid].state == "running"  # no restart forced
    assert "server.startup" in _actions(owner, sid)

    mark = viewer.mark()
    assert owner.post(f"/servers/{sid}/power", {"action": "restart"}).status_code == 202
    viewer.state("stopping", since=mark)
    viewer.console_line("Starting Brave New on port", since=mark)
    wait_status(owner, sid, "running")
    owner.post(f"/servers/{sid}/power", {"action": "kill"})
    wait_status(owner, sid, "offline")


def test_image_is_one_of_the_blueprints(stack, owner, server):
    sid = server
    bad = _patch(owner, f"/servers/{sid}/image", {"image": "evil/miner:latest"})
    assert bad.status_code == 422 and "image" in bad.json()["error"]["fields"]
    images = owner.get(f"/servers/{sid}/startup").json()["images"]
    name, ref = next(iter(images.items()))
    for choice in (name, ref):  # by display name or by reference
        r = _patch(owner, f"/servers/{sid}/image", {"image": choice})
        assert r.status_code == 200 and r.json()["image"] == ref, r.text
    _wait(lambda: _agent_spec(stack, sid)["image"] == ref, "the agent's spec")
    assert "server.image" in _actions(owner, sid)


def test_reinstall_stops_and_reruns_the_install_script(stack, owner, admin, server, viewer):
    sid = server
    game = stack.agent.servers[sid].dir / "game.sh"
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    wait_status(owner, sid, "running")
    game.unlink()  # only the install script makes it again

    mark = viewer.mark()
    r = owner.post(f"/servers/{sid}/reinstall")
    assert r.status_code == 202 and r.json()["command_id"], r.text
    viewer.state("stopping", since=mark)
    viewer.console_line("Caught SIGINT", since=mark)  # stopped the game's own way first
    viewer.state("installing", since=mark)
    viewer.console_line("Installing demo game into", since=mark)
    viewer.state("offline", since=mark)
    wait_status(owner, sid, "offline")
    assert game.is_file()
    assert "server.reinstall" in _actions(owner, sid)

    assert admin.post("/admin/suspensions", {"server_id": sid, "suspended": True}).status_code == 200
    r = owner.post(f"/servers/{sid}/reinstall")
    assert r.status_code == 409 and r.json()["error"]["code"] == "suspended"
    assert admin.post("/admin/suspensions", {"server_id": sid, "suspended": False}).status_code == 200


def _import_variant(admin) -> str:
    """A second blueprint (the demo with another variable and banner), imported by an admin."""
    raw = yaml.safe_load((REPO / "blueprints" / "demo" / "blueprint.yaml").read_text())
    raw["id"], raw["name"] = "demo-motd", "Demo with a greeting"
    raw["variables"] = [{"name": "Greeting", "env": "GREETING", "default": "hi",
                         "rules": {"required": True, "regex": "^[a-z ]{1,20}$"}}]
    raw["install"]["script"] = raw["install"]["script"].replace(
        'echo "Installing demo game', 'echo "Installing greeting game').replace(
        'echo "[Server] Starting ${NAME}', 'echo "[Server] Greeting ${GREETING}; starting ${NAME}')
    r = admin.post("/admin/blueprints/import", {"content": json.dumps(raw), "filename": "motd.json", "save": True})
    assert r.status_code == 200, r.text
    return raw["id"]


def test_switch_blueprint_keeps_the_server_and_its_ports(stack, owner, admin, server, viewer):
    sid = server
    target = _import_variant(admin)
    before = owner.get(f"/servers/{sid}").json()

    r = owner.post(f"/servers/{sid}/blueprint", {"blueprint_id": target, "variables": {"GREETING": "NO!"}})
    assert r.status_code == 422 and set(r.json()["error"]["fields"]) == {"variables.GREETING"}, r.text
    r = owner.post(f"/servers/{sid}/blueprint", {"blueprint_id": "nope"})
    assert r.status_code == 422 and "blueprint_id" in r.json()["error"]["fields"]

    mark = viewer.mark()
    r = owner.post(f"/servers/{sid}/blueprint", {"blueprint_id": target, "variables": {"GREETING": "hello there"}})
    assert r.status_code == 202, r.text
    got = r.json()
    assert (got["id"], got["ports"], got["node_id"]) == (sid, before["ports"], before["node_id"])
    assert got["blueprint_id"] == target
    viewer.console_line("Installing greeting game", since=mark)
    viewer.state("offline", since=mark)
    wait_status(owner, sid, "offline")
    spec = _agent_spec(stack, sid)
    assert spec["environment"]["GREETING"] == "hello there" and "SERVER_NAME" not in spec["environment"]
    startup = owner.get(f"/servers/{sid}/startup").json()
    assert startup["blueprint_id"] == target and [v["env"] for v in startup["variables"]] == ["GREETING"]
    assert "server.blueprint" in _actions(owner, sid)

    mark = viewer.mark()
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    viewer.console_line("Greeting hello there; starting Demo", since=mark)
    wait_status(owner, sid, "running")
    owner.post(f"/servers/{sid}/power", {"action": "kill"})
    wait_status(owner, sid, "offline")


def test_allocations_add_and_remove(stack, owner, stranger, server):
    sid = server
    ports = owner.get(f"/servers/{sid}/allocations").json()
    assert len(ports) == 1 and ports[0]["primary"] is True
    primary = ports[0]["port"]

    r = owner.post(f"/servers/{sid}/allocations", {})
    assert r.status_code == 201, r.text
    added = r.json()[-1]["port"]
    assert added != primary and r.json()[-1]["primary"] is False
    assert [p["port"] for p in owner.get(f"/servers/{sid}").json()["ports"]] == [primary, added]
    _wait(lambda: [p["port"] for p in _agent_spec(stack, sid)["ports"]] == [primary, added], "the agent's ports")
    assert stack.agent.servers[sid].spec.environment["SERVER_PORT"] == str(primary)

    taken = owner.post(f"/servers/{sid}/allocations", {"port": added})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "port_taken"
    outside = owner.post(f"/servers/{sid}/allocations", {"port": 80})
    assert outside.status_code == 422 and "port" in outside.json()["error"]["fields"]
    r = owner.delete(f"/servers/{sid}/allocations/{primary}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "primary"
    assert stranger.delete(f"/servers/{sid}/allocations/{added}").status_code == 404

    r = owner.delete(f"/servers/{sid}/allocations/{added}")
    assert r.status_code == 200 and [p["port"] for p in r.json()] == [primary], r.text
    _wait(lambda: [p["port"] for p in _agent_spec(stack, sid)["ports"]] == [primary], "the agent's ports")
    assert owner.delete(f"/servers/{sid}/allocations/{added}").status_code == 404
    again = owner.post(f"/servers/{sid}/allocations", {"port": added})  # freed: it can be taken again
    assert again.status_code == 201, again.text
    actions = _actions(owner, sid)
    assert "server.allocation.create" in actions and "server.allocation.delete" in actions


def test_concurrent_adds_never_share_a_port(stack, owner, server):
    other = owner.post("/servers", {"name": "Rival", "blueprint_id": "demo", "location_id": "local"}).json()["id"]
    try:
        sids = [server, other] * 4
        with cf.ThreadPoolExecutor(len(sids)) as pool:
            results = list(pool.map(lambda s: owner.post(f"/servers/{s}/allocations", {}), sids))
        assert [r.status_code for r in results] == [201] * len(sids), [r.text for r in results]
        held = [p["port"] for s in (server, other) for p in owner.get(f"/servers/{s}").json()["ports"]]
        assert len(held) == 2 + len(sids) and len(set(held)) == len(held), held
    finally:
        owner.delete(f"/servers/{other}")
