"""Schedules against a real agent: two tickers racing fire each due schedule exactly once,
command tasks reach the game console, offsets continue on later ticks, input is validated."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests
from chalicelib.services import schedules
from chalicelib.store import get_store
from livewire import Viewer, wait_status
from stellar.devstack.bridge import Ticker

YEARLY = "0 0 1 1 *"  # after one run nothing is due again during the test


def _audit(sid: str) -> list[Any]:
    return list(get_store().as_admin("test").list_audit(sid, limit=None))


def _make_due(sid: str, schedule_id: str) -> None:
    store = get_store().as_admin("test")
    s = store.get_schedule(sid, schedule_id)
    s.next_run = time.time() - 1
    store.put_schedule(s)


def test_two_tickers_fire_each_due_schedule_once(stack, owner) -> None:  # noqa: ANN001
    r = owner.post("/servers", {"name": "Sched", "blueprint_id": "demo", "location_id": "local"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    wait_status(owner, sid, "offline", 60)
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    wait_status(owner, sid, "running")
    grant = owner.post(f"/servers/{sid}/console-grant").json()
    viewer = Viewer(grant)
    viewer.wait_subscribed()
    ids = []
    for i in range(5):
        r = owner.post(f"/servers/{sid}/schedules", {
            "name": f"s{i}", "cron": YEARLY, "timezone": "Europe/Berlin", "only_when_online": True,
            "tasks": [{"action": "command", "payload": f"say once-{i}"}]})
        assert r.status_code == 201, r.text
        assert r.json()["next_run"] > time.time()
        ids.append(r.json()["id"])
    for schedule_id in ids:
        _make_due(sid, schedule_id)

    tickers = [Ticker(schedules.tick, interval=0.02) for _ in range(2)]
    for t in tickers:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = owner.get(f"/servers/{sid}/schedules").json()["schedules"]
            if all(s["last_result"] == "ok" for s in listed):
                break
            time.sleep(0.1)
        for i in range(5):
            viewer.console_line(f"once-{i}")
    finally:
        for t in tickers:
            t.stop()
    try:
        listed = {s["id"]: s for s in owner.get(f"/servers/{sid}/schedules").json()["schedules"]}
        assert all(listed[i]["last_result"] == "ok" and listed[i]["next_run"] > time.time() + 86_400 for i in ids)
        ran = Counter(e.target for e in _audit(sid) if e.action == "schedule.task.command")
        assert ran == Counter({f"schedule:{i}": 1 for i in ids})
        viewer.console_line("once-4")
        lines = Counter(ln for _t, m in viewer.history if _t.endswith("/console") for ln in m.get("lines", [])
                        if "once-" in ln)
        assert lines == Counter({f"[Server] once-{i}": 1 for i in range(5)}), lines
    finally:
        viewer.close()

    # offsets: run now runs the first task; the second is left for a tick at or after its due time
    r = owner.post(f"/servers/{sid}/schedules", {"name": "offset", "cron": YEARLY, "tasks": [
        {"action": "command", "payload": "say step-one"},
        {"action": "command", "payload": "say step-two", "offset_s": 600}]})
    oid = r.json()["id"]
    started = time.time()
    ran = owner.post(f"/servers/{sid}/schedules/{oid}/run")
    assert ran.status_code == 200, ran.text
    assert ran.json()["last_result"] == "running: task 2 of 2" and ran.json()["running"] is True
    assert ran.json()["next_task_at"] >= started + 600
    assert owner.post(f"/servers/{sid}/schedules/{oid}/run").status_code == 409  # no overlapping runs
    steps = lambda: [e.details.get("task") for e in _audit(sid) if e.target == f"schedule:{oid}"  # noqa: E731
                     and e.action == "schedule.task.command"]
    assert steps() == ["1"]
    schedules.tick(started + 300)
    assert steps() == ["1"]
    schedules.tick(started + 700)
    assert sorted(steps()) == ["1", "2"]
    final = next(s for s in owner.get(f"/servers/{sid}/schedules").json()["schedules"] if s["id"] == oid)
    assert final["last_result"] == "ok" and final["running"] is False

    # only_when_online: skipped while the server is offline
    assert owner.post(f"/servers/{sid}/power", {"action": "kill"}).status_code == 202
    wait_status(owner, sid, "offline")
    _make_due(sid, ids[0])
    schedules.tick()
    skipped = next(s for s in owner.get(f"/servers/{sid}/schedules").json()["schedules"] if s["id"] == ids[0])
    assert skipped["last_result"].startswith("skipped"), skipped


def test_validation_edit_and_delete(stack, owner, stranger) -> None:  # noqa: ANN001
    r = owner.post("/servers", {"name": "SchedV", "blueprint_id": "demo", "location_id": "local"})
    sid = r.json()["id"]
    base = f"/servers/{sid}/schedules"
    bad = [{"name": "x", "cron": "* * * * * *"}, {"name": "x", "cron": "61 * * * *"},
           {"name": "x", "cron": "* * * * *", "timezone": "Mars/Olympus"},
           {"name": "x", "cron": "* * * * *", "tasks": [{"action": "command", "payload": "say", "offset_s": 901}]},
           {"name": "x", "cron": "* * * * *", "tasks": [{"action": "power", "payload": "explode"}]},
           {"name": "x", "cron": "* * * * *", "tasks": [{"action": "command", "payload": "a\nb"}]}]
    for body in bad:
        assert owner.post(base, body).status_code == 422, body
    r = owner.post(base, {"name": "nightly", "cron": "30 3 * * *", "timezone": "America/New_York",
                          "tasks": [{"action": "backup"}, {"action": "power", "payload": "restart",
                                                          "offset_s": 900, "continue_on_failure": True}]})
    assert r.status_code == 201, r.text
    s = r.json()
    when = datetime.fromtimestamp(s["next_run"], ZoneInfo("America/New_York"))  # whatever the host's zone
    assert (when.hour, when.minute) == (3, 30)
    r = requests.patch(f"{owner.base}{base}/{s['id']}", json={"enabled": False, "cron": "0 4 * * 1"},
                       headers=owner.headers, timeout=15)
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["next_run"] is None
    assert owner.post(f"{base}/{s['id']}/run").status_code == 409  # disabled
    assert stranger.get(base).status_code == 404
    assert owner.delete(f"{base}/{s['id']}").status_code == 200
    assert owner.get(base).json()["schedules"] == []
