"""Servers through the API, over HTTP, against a real agent and broker."""

from __future__ import annotations

import concurrent.futures as cf

import requests
from livewire import Viewer, wait_status
from stellar_protocol import topics


def _create(user, **over):
    body = {"name": "World", "blueprint_id": "demo", "location_id": "local",
            "variables": {"SERVER_NAME": "Alpha"}}
    body.update(over)
    return user.post("/servers", body)


def test_catalogue_is_visible(owner):
    blueprints = owner.get("/blueprints").json()
    demo = next(b for b in blueprints if b["id"] == "demo")
    assert "script" not in demo and "install" not in demo  # install scripts stay server-side
    assert demo["variables"][0]["env"] == "SERVER_NAME"
    assert owner.get("/locations").json() == [{"id": "local", "name": "Local"}]


def test_bad_create_requests_get_field_errors(owner):
    r = _create(owner, blueprint_id="nope")
    assert r.status_code == 422 and "blueprint_id" in r.json()["error"]["fields"]
    r = _create(owner, variables={"SERVER_NAME": "bad;name$(reboot)"})
    assert r.status_code == 422 and "variables.SERVER_NAME" in r.json()["error"]["fields"]
    r = _create(owner, variables={"NOT_A_VAR": "x"})
    assert r.status_code == 422 and "variables.NOT_A_VAR" in r.json()["error"]["fields"]
    r = _create(owner, surprise=1)
    assert r.status_code == 422 and "surprise" in r.json()["error"]["fields"]
    r = _create(owner, name="")
    assert r.status_code == 422 and "name" in r.json()["error"]["fields"]
    r = requests.post(f"{owner.base}/servers", data=b"{not json", headers={**owner.headers,
                      "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400
    assert owner.get("/servers").json() == []  # nothing was half-created


def test_lifecycle_through_api_agent_and_viewer(owner, stranger):
    r = _create(owner)
    assert r.status_code == 201, r.text
    server = r.json()
    sid = server["id"]
    assert server["status"] == "installing"
    assert 31000 <= server["ports"][0]["port"] <= 31019

    # Someone else cannot see it, act on it, or watch it: 404, existence not leaked.
    assert stranger.get(f"/servers/{sid}").status_code == 404
    assert stranger.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 404
    assert stranger.post(f"/servers/{sid}/console-grant").status_code == 404
    assert [s["id"] for s in stranger.get("/servers").json()] == []

    wait_status(owner, sid, "offline")
    grant = owner.post(f"/servers/{sid}/console-grant").json()
    viewer = Viewer(grant)
    try:
        viewer.wait_subscribed()
        assert all(code.value < 128 for code in viewer.subacks), viewer.subacks
        started = viewer.mark()
        assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
        viewer.state("starting", since=started)
        viewer.console_line("Starting Alpha", since=started)
        viewer.state("running", since=started)
        wait_status(owner, sid, "running")
        assert owner.post(f"/servers/{sid}/command", {"line": "say hello from the api"}).status_code == 202
        viewer.console_line("[Server] hello from the api")
        # Starting twice is refused with a clear reason, not queued.
        r = owner.post(f"/servers/{sid}/power", {"action": "start"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "bad_state"
        stopped = viewer.mark()
        assert owner.post(f"/servers/{sid}/power", {"action": "stop"}).status_code == 202
        viewer.state("stopping", since=stopped)
        viewer.console_line("Goodbye", since=stopped)  # the game saw SIGINT and saved, it was not killed
        viewer.state("offline", since=stopped)
        wait_status(owner, sid, "offline")
        # A viewer arriving later gets the recent console through the backlog command.
        assert owner.post(f"/servers/{sid}/console/backlog").status_code == 202
        viewer.wait_for(lambda t, m: m.get("backlog") is True and any("Goodbye" in x for x in m["lines"]),
                        since=stopped)
    finally:
        viewer.close()
    assert owner.delete(f"/servers/{sid}").status_code == 202
    assert owner.get(f"/servers/{sid}").status_code == 404


def test_a_grant_only_reaches_its_own_server(owner, make_user):
    other_owner = make_user()
    a = _create(owner, name="A").json()
    b = _create(other_owner, name="B").json()
    wait_status(owner, a["id"], "offline")
    wait_status(other_owner, b["id"], "offline")
    grant = owner.post(f"/servers/{a['id']}/console-grant").json()
    spy = Viewer(grant, filters=["#", topics.server_viewer_filter(b["node_id"], b["id"])])
    try:
        spy.wait_subscribed()
        assert other_owner.post(f"/servers/{b['id']}/power", {"action": "start"}).status_code == 202
        wait_status(other_owner, b["id"], "running")
        spy.mark()
        leaked = [m for m in spy.history if b["id"] in m[0]]
        assert leaked == []
    finally:
        spy.close()
        other_owner.post(f"/servers/{b['id']}/power", {"action": "kill"})


def test_concurrent_requests_each_see_their_own_user(owner, stranger):
    users = [owner, stranger] * 20

    def me(user):
        return user, user.get("/me").json()["id"]

    with cf.ThreadPoolExecutor(max_workers=10) as pool:
        for user, seen in pool.map(me, users):
            assert seen == user.id
