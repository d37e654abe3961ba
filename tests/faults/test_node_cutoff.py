"""A node cut off without a clean disconnect: the agent process is frozen (SIGSTOP), so its TCP
connection stays open but silent, as when a machine hangs or its network drops packets.

The control plane must show it offline within 10 s (broker keepalive → last will, or missed
heartbeats), and once it is thawed show it online again with its state reconciled: the server
that kept running is still running, and a command sent while it was away runs once.
"""

from __future__ import annotations

import signal
import time

import pytest
from livewire import wait_status

from .conftest import Recorder, create_and_start, user

pytestmark = [pytest.mark.faults, pytest.mark.broker]
OFFLINE_BOUND_S = 10.0


def test_cut_off_node_is_offline_within_10s_and_reconciles_on_return(fault_stack) -> None:
    stack = fault_stack(runtime="process")
    owner = user(stack)
    sid = create_and_start(owner, "Cutoff")
    recorder = Recorder(stack)
    # a viewer's grant: without one the agent (cost rule) publishes no console at all
    assert owner.post(f"/servers/{sid}/console-grant").status_code == 200
    try:
        stack.signal_agent(signal.SIGSTOP)
        cut = time.monotonic()
        try:
            stack.wait_node("offline", OFFLINE_BOUND_S)
        finally:
            took = time.monotonic() - cut
        print(f"node marked offline {took:.1f}s after it was cut off")
        r = owner.post(f"/servers/{sid}/command", {"line": "say while-away"})
        assert r.status_code in {202, 409, 503}, r.text
        sent_while_away = r.status_code == 202

        stack.signal_agent(signal.SIGCONT)
        back = stack.wait_node("online", 20)
        print(f"node online again {back:.1f}s after it returned")
        assert wait_status(owner, sid, "running", 20)["status"] == "running"
        if sent_while_away:
            recorder.wait(lambda: len(recorder.lines_with("[Server] while-away")) >= 1, 20, "the queued command")
            time.sleep(1.0)
            assert len(recorder.lines_with("[Server] while-away")) == 1
        token = f"after-{int(time.time())}"
        assert owner.post(f"/servers/{sid}/command", {"line": f"say {token}"}).status_code == 202
        recorder.wait(lambda: len(recorder.lines_with(token)) == 1, 20, "a command after the return")
    finally:
        recorder.close()
