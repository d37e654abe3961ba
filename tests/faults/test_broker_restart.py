"""The broker restarts while 100 console commands are queued for a node and a console streams.

The agent is frozen (SIGSTOP) so the API's commands pile up in its persistent session at the
broker (up to 20 in flight into its socket, the rest queued); the broker then restarts
(SIGTERM writes its persistence file) and the agent is thawed. Every command must run exactly
once (the in-flight ones are redelivered and must be recognised as duplicates), the browser
viewer's console must resume, and the stored server must still be running.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from livewire import Viewer, wait_status

from .conftest import Recorder, create_and_start, post_retrying, user

pytestmark = [pytest.mark.faults, pytest.mark.broker]
COMMANDS = 100


def test_broker_restart_with_100_queued_commands_runs_each_once(fault_stack) -> None:
    stack = fault_stack(runtime="process")
    owner = user(stack)
    sid = create_and_start(owner, "Queued")
    recorder = Recorder(stack)
    viewer = Viewer(owner.post(f"/servers/{sid}/console-grant").json())
    try:
        viewer.wait_subscribed()
        assert owner.post(f"/servers/{sid}/command", {"line": "say before"}).status_code == 202
        viewer.console_line("[Server] before")

        stack.signal_agent(signal.SIGSTOP)
        ids = []
        for i in range(COMMANDS):
            r = owner.post(f"/servers/{sid}/command", {"line": f"say queued-{i:03d}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["command_id"])
        time.sleep(0.3)  # let the broker push what it will into the frozen agent's socket
        stack.restart_broker(down_s=0.5)
        stack.signal_agent(signal.SIGCONT)

        recorder.wait(lambda: len(recorder.lines_with("queued-")) >= COMMANDS, 60,
                      f"{COMMANDS} queued commands to run; agent log:\n{stack.agent_log()}")
        time.sleep(1.5)  # any duplicate would show up by now
        ran = Counter(ln.split("queued-")[1][:3] for ln in recorder.lines_with("[Server] queued-"))
        assert sorted(ran) == [f"{i:03d}" for i in range(COMMANDS)], "some commands never ran"
        assert set(ran.values()) == {1}, f"commands run more than once: {[k for k, v in ran.items() if v > 1]}"
        with recorder.lock:
            first_acks = Counter(a["id"] for a in recorder.acks if not a.get("duplicate"))
        assert all(first_acks[c] == 1 for c in ids), "each command is acknowledged (not as duplicate) once"
        with recorder.lock:
            redelivered = sum(1 for a in recorder.acks if a.get("duplicate") and a["id"] in set(ids))
        print(f"redelivered and recognised as duplicates: {redelivered}")

        # The browser's console resumes (its client reconnects and re-subscribes with its grant).
        mark = viewer.mark()
        r = post_retrying(owner, f"/servers/{sid}/command", {"line": "say after-restart"})
        assert r.status_code == 202, r.text
        viewer.console_line("[Server] after-restart", timeout=30, since=mark)

        # No state lost: the store, the agent and the viewer agree the server is running.
        assert wait_status(owner, sid, "running", 10)["status"] == "running"
        stop = viewer.mark()
        assert post_retrying(owner, f"/servers/{sid}/power", {"action": "stop"}).status_code == 202
        viewer.state("offline", timeout=30, since=stop)
        wait_status(owner, sid, "offline", 30)
    finally:
        viewer.close()
        recorder.close()
