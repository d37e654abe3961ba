"""Docker-only guarantees: container hardening and re-attaching after an agent restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import docker
import pytest
from stellar_protocol.messages import InstallSpec

from .conftest import Harness, demo_spec

pytestmark = [pytest.mark.docker, pytest.mark.broker]

SID = "srv-hard"


@pytest.fixture
def dnode(harness_factory: Callable[[str], Harness], demo_image: str) -> Harness:
    h = harness_factory("docker")
    h.start_agent()
    h.view(SID)
    return h


def _check_hardened(attrs: dict, server_dir: str, extra_mounts: int = 0) -> None:
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["PidsLimit"] == 64
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["MemorySwap"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["Privileged"] is False
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,noexec,size=64m"}
    assert attrs["Config"]["OpenStdin"] is True or extra_mounts  # install has no stdin
    assert attrs["Config"]["Tty"] is False
    mounts = attrs["Mounts"]
    assert len(mounts) == 1 + extra_mounts
    home = [m for m in mounts if m["Destination"] == "/home/container"]
    assert home and home[0]["Source"] == server_dir and home[0]["RW"] is True
    for m in mounts:
        if m["Destination"] != "/home/container":
            assert m["RW"] is False  # the install script mount is read-only


def test_containers_are_hardened(dnode: Harness) -> None:
    obs = dnode.observer
    client = docker.from_env()
    spec = demo_spec(SID)
    slow_script = "sleep 2\n" + spec.install.script  # type: ignore[union-attr]
    spec = spec.model_copy(update={"install": InstallSpec(image=spec.image, script=slow_script)})
    server_dir = str(dnode.config.volumes_dir / SID)

    seen: list[dict] = []

    def watch_install() -> None:
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            for c in client.containers.list(filters={"label": f"stellar.install={SID}"}):
                seen.append(c.attrs)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_install)
    watcher.start()
    cid = obs.send({"type": "server.install", "spec": spec.model_dump(mode="json")})
    assert cid and obs.ack(cid)["ok"]
    watcher.join()
    assert seen, "install container was never observed"
    _check_hardened(seen[0], server_dir, extra_mounts=1)
    assert seen[0]["Config"]["Labels"]["stellar.node"] == dnode.node_id
    assert not client.containers.list(all=True, filters={"label": f"stellar.install={SID}"})  # removed

    assert obs.ack(dnode.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    container = client.containers.get(f"stellar-{SID}")
    _check_hardened(container.attrs, server_dir)
    assert container.labels == {"stellar.server": SID, "stellar.node": dnode.node_id}
    assert container.attrs["Config"]["Cmd"] == ["sh", "-c", "sh ./game.sh"]
    assert "SERVER_NAME=Test" in container.attrs["Config"]["Env"]
    # the game really runs as uid 1000 without capabilities
    code, out = container.exec_run(["sh", "-c", "id -u; cat /proc/self/status"], user="")
    assert out.decode().splitlines()[0] == "1000"
    assert "CapEff:\t0000000000000000" in out.decode()


def test_reattach_after_agent_restart(dnode: Harness) -> None:
    obs = dnode.observer
    client = docker.from_env()
    assert obs.ack(dnode.install(SID))["ok"]
    assert obs.ack(dnode.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    started_at = client.containers.get(f"stellar-{SID}").attrs["State"]["StartedAt"]

    dnode.stop_agent()  # the agent goes away; the game must not
    obs.wait_for(lambda: obs.node_status()[-1]["status"] == "offline", what="offline status")
    time.sleep(0.5)
    container = client.containers.get(f"stellar-{SID}")
    assert container.status == "running"

    mark = len(obs.states(SID))
    dnode.start_agent()  # same node id, same data dir
    state = obs.wait_state("running", SID, after=mark)
    assert "re-attached" in (state.get("detail") or "")
    assert "starting" not in obs.state_names(SID)[mark:]
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started_at  # not restarted

    assert obs.ack(dnode.console(SID, "say still here"))["ok"]
    obs.wait_line("[Server] still here")
    assert obs.ack(dnode.power(SID, "stop"))["ok"]
    obs.wait_line("[Server] Goodbye")
    assert obs.states(SID)[-1]["state"] == "offline"
