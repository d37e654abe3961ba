"""The node agent driven over MQTT exactly as the control plane drives it."""

from __future__ import annotations

import json
import time

import pytest
from stellar_protocol import topics

from . import wire
from .conftest import Harness, demo_spec

pytestmark = pytest.mark.broker

SID = "srv-demo"


def install_and_start(node: Harness, server_id: str = SID) -> None:
    obs = node.observer
    assert obs.ack(node.install(server_id))["ok"]
    start = node.power(server_id, "start")
    assert obs.ack(start)["ok"]
    obs.wait_state("running", server_id)


def test_full_lifecycle(node: Harness) -> None:
    obs = node.observer
    status = obs.wait_for(lambda: [s for s in obs.node_status() if s["status"] == "online"], what="online")
    assert status[0]["runtime"] == node.config.runtime
    assert status[0]["isolated"] is (node.config.runtime == "docker")

    ack = obs.ack(node.install(SID))
    assert ack["ok"], ack
    assert obs.state_names(SID)[:2] == ["installing", "offline"]
    obs.wait_line("Install complete", source="install")

    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID)
    names = obs.state_names(SID)
    assert names[names.index("starting") + 1] == "running"
    obs.wait_line("Server is ready")

    assert obs.ack(node.console(SID, "say hello"))["ok"]
    obs.wait_line("[Server] hello")

    mark = len(obs.states(SID))
    assert obs.ack(node.power(SID, "restart"))["ok"]
    obs.wait_state("running", SID, after=mark)
    assert obs.state_names(SID)[mark:] == ["stopping", "offline", "starting", "running"]

    mark = len(obs.states(SID))
    assert obs.ack(node.power(SID, "kill"))["ok"]
    assert obs.states(SID)[mark:][-1]["detail"] == "killed"
    assert obs.ack(node.power(SID, "start"))["ok"]
    obs.wait_state("running", SID, after=mark)

    assert obs.ack(node.power(SID, "stop"))["ok"]
    assert obs.state_names(SID)[-2:] == ["stopping", "offline"]
    obs.wait_line("[Server] Goodbye")  # the trap ran: SIGINT, not SIGKILL
    assert obs.states(SID)[-1]["detail"] == "stopped"

    seqs = [s["seq"] for s in obs.states(SID)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    # a console command on a stopped server is refused with a reason
    refused = obs.ack(node.console(SID, "say nobody"))
    assert not refused["ok"] and "offline" in refused["error"]

    # a late viewer asks for the backlog and gets the ring buffer, flagged
    assert obs.ack(obs.send({"type": "console.backlog", "server_id": SID}))["ok"]
    obs.wait_for(lambda: [m for m in obs.consoles(SID) if m.get("backlog") and "[Server] hello" in m["lines"]])


def test_duplicates_and_invalid_commands(node: Harness) -> None:
    obs = node.observer
    spec = demo_spec(SID).model_dump(mode="json")
    command = {"v": 1, "id": "dup-command-0001", "ts": time.time(), "type": "server.install", "spec": spec}
    obs.send(json.dumps(command).encode())
    obs.send(json.dumps(command).encode())
    obs.wait_for(lambda: len(obs.acks_for("dup-command-0001")) == 2, what="two acks")
    acks = obs.acks_for("dup-command-0001")
    # the duplicate is acked at once; the original only when the install has finished
    assert all(a["ok"] for a in acks)
    assert sorted(bool(a.get("duplicate")) for a in acks) == [False, True]
    assert obs.state_names(SID).count("installing") == 1

    before = len(obs.states(SID))
    bad = [
        {
            "v": 1,
            "id": "bad-extra-field1",
            "ts": time.time(),
            "type": "server.power",
            "server_id": SID,
            "action": "start",
            "sudo": True,
        },
        {
            "v": 1,
            "id": "bad-stale-cmd-01",
            "ts": time.time() - 3600,
            "type": "server.power",
            "server_id": SID,
            "action": "start",
        },
        {
            "v": 1,
            "id": "bad-action-cmd01",
            "ts": time.time(),
            "type": "server.power",
            "server_id": SID,
            "action": "explode",
        },
    ]
    for payload in bad:
        if payload["id"] != "bad-stale-cmd-01":  # staleness is not a schema property
            assert wire.problems(topics.node_commands(node.node_id), json.dumps(payload).encode())
        obs.send(json.dumps(payload).encode())
    obs.send(b"this is not json")
    for payload in bad:
        ack = obs.ack(payload["id"])
        assert ack["ok"] is False and ack["error"], ack
    assert "stale" in obs.acks_for("bad-stale-cmd-01")[0]["error"]
    unknown = obs.ack(node.power("no-such-server", "start"))
    assert not unknown["ok"] and "unknown server" in unknown["error"]
    time.sleep(0.5)
    assert len(obs.states(SID)) == before  # nothing was executed
    assert node.agent is not None and not node.agent.runtime.is_running(SID)

    assert (node.config.volumes_dir / SID / "game.sh").exists()
    assert obs.ack(obs.send({"type": "server.delete", "server_id": SID}))["ok"]
    assert not (node.config.volumes_dir / SID).exists()
    assert not (node.config.servers_dir / f"{SID}.json").exists()
    assert any(t.endswith(f"{SID}/state") and p == b"" for t, p, _ in obs.messages)  # retained cleared
    gone = obs.ack(node.power(SID, "start"))
    assert not gone["ok"] and "unknown server" in gone["error"]


def test_crash_is_detected_and_restarted_once(node: Harness) -> None:
    obs = node.observer
    install_and_start(node)
    # The demo's own "stop" console command exits without the agent asking: a crash.
    mark = len(obs.states(SID))
    assert obs.ack(node.console(SID, "stop"))["ok"]
    crashed = obs.wait_state("offline", SID, after=mark)
    assert crashed["detail"] == "crashed (exit 0)"
    obs.wait_state("running", SID, after=mark)  # automatically restarted

    mark = len(obs.states(SID))
    assert obs.ack(node.console(SID, "stop"))["ok"]
    assert obs.wait_state("offline", SID, after=mark)["detail"] == "crashed (exit 0)"
    time.sleep(1.5)
    assert "starting" not in obs.state_names(SID)[mark:]  # second crash within 60 s: no loop
    obs.wait_line("not restarting", source="agent")


def test_agent_restart_keeps_seq_and_commands(harness_factory, runtime_name: str) -> None:
    node = harness_factory(runtime_name)
    node.start_agent()
    obs = node.observer
    cid = node.install(SID)
    assert obs.ack(cid)["ok"]
    last_seq = obs.states(SID)[-1]["seq"]
    node.stop_agent()
    obs.wait_for(lambda: obs.node_status()[-1]["status"] == "offline", what="offline status")

    node.start_agent()
    obs.wait_for(lambda: obs.node_status()[-1]["status"] == "online", what="online again")
    obs.wait_for(lambda: obs.states(SID)[-1]["seq"] > last_seq, what="republished state")
    assert obs.states(SID)[-1]["state"] == "offline"
    # the same command id redelivered after the restart is not run again
    obs.send(
        json.dumps(
            {"v": 1, "id": cid, "ts": time.time(), "type": "server.power", "server_id": SID, "action": "start"}
        ).encode()
    )
    obs.wait_for(lambda: len(obs.acks_for(cid)) == 2, what="duplicate ack")
    assert obs.acks_for(cid)[1]["duplicate"] is True
    time.sleep(0.3)
    assert "starting" not in obs.state_names(SID)
