"""The agent process is SIGKILLed (no clean disconnect, no chance to save anything) and restarted.

With the Docker runtime the game container must keep running through it; the restarted agent
re-attaches, the stored state still says running, commands sent while it was dead run once
when it returns, and a redelivered command id is recognised as a duplicate.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter

import docker
import pytest
from livewire import Viewer, wait_status
from stellar_protocol import topics

from .conftest import Recorder, create_and_start, user

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.broker]


def test_agent_sigkill_keeps_servers_running_and_runs_pending_commands_once(fault_stack, docker_engine) -> None:
    stack = fault_stack(runtime="docker")
    owner = user(stack)
    sid = create_and_start(owner, "Survivor")
    engine = docker.from_env(timeout=30)
    recorder = Recorder(stack)
    viewer = Viewer(owner.post(f"/servers/{sid}/console-grant").json())
    try:
        viewer.wait_subscribed()
        container = engine.containers.get(f"stellar-{sid}")
        started_at = container.attrs["State"]["StartedAt"]

        stack.signal_agent(signal.SIGKILL)
        offline_after = stack.wait_node("offline", 10)  # the broker sees the socket close: last will
        container.reload()
        assert container.status == "running", "the game container died with the agent"

        # Commands sent while the agent is dead wait in its persistent session at the broker.
        pending = []
        for i in range(5):
            r = owner.post(f"/servers/{sid}/command", {"line": f"say pending-{i}"})
            assert r.status_code == 202, r.text
            pending.append(r.json()["command_id"])

        stack.start_agent_process()
        stack.wait_node("online", 30)
        recorder.wait(lambda: len(recorder.lines_with("[Server] pending-")) >= 5, 30,
                      f"pending commands to run; agent log:\n{stack.agent_log()}")

        # Reconciled: same container (never restarted), state still running everywhere.
        container.reload()
        assert container.status == "running" and container.attrs["State"]["StartedAt"] == started_at
        assert wait_status(owner, sid, "running", 10)["status"] == "running"
        with recorder.lock:  # the restarted agent re-published its state on connect: still running
            assert [s for server, s in recorder.states if server == sid][-1] == "running", recorder.states

        # A redelivery of an already-run command (same id) is acknowledged as a duplicate, not run.
        replay = {"v": 1, "id": pending[0], "ts": time.time(), "type": "server.command", "server_id": sid,
                  "line": "say pending-0"}
        recorder.client.publish(topics.node_commands(stack.opts.node_id), json.dumps(replay), qos=1)
        recorder.wait(lambda: any(a["id"] == pending[0] and a.get("duplicate") for a in list(recorder.acks)), 15,
                      "the duplicate ack")
        time.sleep(1.0)
        ran = Counter(ln.split("pending-")[1][:1] for ln in recorder.lines_with("[Server] pending-"))
        assert ran == Counter({str(i): 1 for i in range(5)}), f"pending commands not run exactly once: {ran}"

        # The console still reaches the browser through the re-attached container.
        mark = viewer.mark()
        token = uuid.uuid4().hex[:8]
        assert owner.post(f"/servers/{sid}/command", {"line": f"say back-{token}"}).status_code == 202
        viewer.console_line(f"[Server] back-{token}", timeout=30, since=mark)
        print(f"node marked offline {offline_after:.1f}s after SIGKILL")
    finally:
        viewer.close()
        recorder.close()
        engine.close()
