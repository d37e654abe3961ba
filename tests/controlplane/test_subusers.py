"""Subusers through the API: invite by email, no granting beyond one's own nodes, unknown
nodes refused, shared servers listed, effective nodes readable, and live revocation proven
by delivery: after a change, a removal or the server's deletion, a message published on the
server's console topic reaches a control subscriber but no longer the revoked viewer."""

from __future__ import annotations

import json
import queue
import uuid

import pytest
import requests
from chalicelib.broker import Subscriber
from chalicelib.config import settings
from chalicelib.services import messaging
from livewire import Viewer, wait_status
from stellar_protocol import topics


def _patch(user, path, body):
    return requests.patch(f"{user.base}{path}", json=body, headers=user.headers, timeout=15)


@pytest.fixture()
def server(owner):
    r = owner.post("/servers", {"name": "Shared", "blueprint_id": "demo", "location_id": "local"})
    assert r.status_code == 201, r.text
    wait_status(owner, r.json()["id"], "offline")
    return r.json()


def _console(server):
    return topics.server_console(server["node_id"], server["id"])


def _publish_line(server, text):
    """What the agent would publish: one console line on the server's topic (as the broker admin)."""
    messaging.publisher().publish(_console(server), json.dumps({"lines": [text]}).encode(), qos=1)


def _saw(viewer, text):
    viewer.mark()
    return any(text in line for t, m in viewer.history if t.endswith("/console") for line in m.get("lines", []))


def test_invite_list_edit_remove_and_what_the_subuser_sees(owner, make_user, server):
    sid = server["id"]
    friend = make_user()
    r = owner.post(f"/servers/{sid}/subusers", {"email": friend.email.upper(), "permissions": ["console.read",
                                                                                               "settings.read"]})
    assert r.status_code == 201, r.text
    assert r.json() == {"user_id": friend.id, "email": friend.email, "permissions": ["console.read", "settings.read"]}
    again = owner.post(f"/servers/{sid}/subusers", {"email": friend.email, "permissions": []})
    assert again.status_code == 409
    assert owner.get(f"/servers/{sid}/subusers").json() == [r.json()]

    assert sid in [s["id"] for s in friend.get("/servers").json()]  # shared servers are listed
    mine = friend.get(f"/servers/{sid}/permissions").json()
    assert mine == {"owner": False, "admin": False, "permissions": ["console.read", "settings.read"]}
    assert len(owner.get(f"/servers/{sid}/permissions").json()["permissions"]) >= 45  # owners hold all

    bad = _patch(owner, f"/servers/{sid}/subusers/{friend.id}", {"permissions": ["console.read", "files.teleport"]})
    assert bad.status_code == 422 and "permissions" in bad.json()["error"]["fields"]
    unknown = owner.post(f"/servers/{sid}/subusers", {"email": f"nobody-{uuid.uuid4().hex[:6]}@test.local",
                                                      "permissions": []})
    assert unknown.status_code == 422 and "email" in unknown.json()["error"]["fields"]
    own = owner.post(f"/servers/{sid}/subusers", {"email": owner.email, "permissions": []})
    assert own.status_code == 422

    assert _patch(owner, f"/servers/{sid}/subusers/{friend.id}", {"permissions": ["settings.read"]}).status_code == 200
    assert friend.get(f"/servers/{sid}/permissions").json()["permissions"] == ["settings.read"]
    assert friend.post(f"/servers/{sid}/console-grant").status_code == 403  # the change holds at once
    assert owner.delete(f"/servers/{sid}/subusers/{friend.id}").status_code == 200
    assert friend.get(f"/servers/{sid}").status_code == 404  # no access at all any more
    assert owner.delete(f"/servers/{sid}/subusers/{friend.id}").status_code == 404
    assert sid not in [s["id"] for s in friend.get("/servers").json()]


def test_a_subuser_cannot_grant_or_remove_what_they_lack(owner, make_user, server):
    sid = server["id"]
    manager, helper, other = make_user(), make_user(), make_user()
    mgr_nodes = ["user.read", "user.create", "user.update", "console.read"]
    assert owner.post(f"/servers/{sid}/subusers", {"email": manager.email, "permissions": mgr_nodes}).status_code == 201
    r = owner.post(f"/servers/{sid}/subusers", {"email": helper.email, "permissions": ["control.start"]})
    assert r.status_code == 201

    # More than they hold: refused, naming the node, and nothing is created.
    r = manager.post(f"/servers/{sid}/subusers", {"email": other.email, "permissions": ["console.read",
                                                                                       "control.kill"]})
    assert r.status_code == 403 and "control.kill" in r.json()["error"]["message"]
    assert other.get(f"/servers/{sid}").status_code == 404
    # Within what they hold: fine.
    r = manager.post(f"/servers/{sid}/subusers", {"email": other.email, "permissions": ["console.read"]})
    assert r.status_code == 201, r.text
    # Raising someone, or themselves, beyond their own nodes: refused.
    assert _patch(manager, f"/servers/{sid}/subusers/{other.id}",
                  {"permissions": ["console.read", "settings.delete"]}).status_code == 403
    assert _patch(manager, f"/servers/{sid}/subusers/{manager.id}",
                  {"permissions": [*mgr_nodes, "user.delete"]}).status_code == 403
    # Taking away a node they do not hold themselves: refused too (helper keeps control.start).
    assert _patch(manager, f"/servers/{sid}/subusers/{helper.id}", {"permissions": []}).status_code == 403
    assert helper.get(f"/servers/{sid}/permissions").status_code == 403  # reading one's nodes is settings.read
    held = {s["user_id"]: s["permissions"] for s in owner.get(f"/servers/{sid}/subusers").json()}
    assert held[helper.id] == ["control.start"]
    # Changing only nodes they hold is fine, even on someone holding others.
    r = _patch(manager, f"/servers/{sid}/subusers/{helper.id}", {"permissions": ["console.read", "control.start"]})
    assert r.status_code == 200, r.text
    assert manager.delete(f"/servers/{sid}/subusers/{helper.id}").status_code == 403  # no user.delete


@pytest.mark.parametrize("change", ["edit", "remove"])
def test_changing_or_removing_a_subuser_stops_delivery_to_their_live_console(owner, make_user, server, change):
    sid = server["id"]
    friend = make_user()
    assert owner.post(f"/servers/{sid}/subusers", {"email": friend.email,
                                                   "permissions": ["console.read"]}).status_code == 201
    watched = Viewer(friend.post(f"/servers/{sid}/console-grant").json())
    control = Viewer(owner.post(f"/servers/{sid}/console-grant").json())
    try:
        watched.wait_subscribed()
        control.wait_subscribed()
        _publish_line(server, "before the change")
        watched.console_line("before the change", timeout=15)  # the subuser's viewer really receives
        control.console_line("before the change", timeout=15)

        if change == "edit":  # still holds console.read: the grant goes anyway, a new one may be asked for
            r = _patch(owner, f"/servers/{sid}/subusers/{friend.id}", {"permissions": ["console.read", "stats.read"]})
        else:
            r = owner.delete(f"/servers/{sid}/subusers/{friend.id}")
        assert r.status_code == 200, r.text

        since = control.mark()
        for n in range(3):  # the control viewer receiving each one proves the broker delivered it
            _publish_line(server, f"after the change {n}")
            control.console_line(f"after the change {n}", timeout=15, since=since)
        assert not any(_saw(watched, f"after the change {n}") for n in range(3))
    finally:
        watched.close()
        control.close()
    again = friend.post(f"/servers/{sid}/console-grant")
    assert again.status_code == (200 if change == "edit" else 404)


def test_deleting_a_server_stops_delivery_to_every_viewer(owner, make_user, server):
    sid = server["id"]
    friend = make_user()
    assert owner.post(f"/servers/{sid}/subusers", {"email": friend.email,
                                                   "permissions": ["console.read"]}).status_code == 201
    viewers = [Viewer(u.post(f"/servers/{sid}/console-grant").json()) for u in (friend, owner)]
    cfg = settings()
    got: queue.Queue[bytes] = queue.Queue()
    control = Subscriber(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username, cfg.broker_admin_password,
                         [_console(server)], lambda _t, p: got.put(p))
    control.start()
    try:
        for v in viewers:
            v.wait_subscribed()
        _publish_line(server, "while it exists")
        for v in viewers:
            v.console_line("while it exists", timeout=15)
        assert owner.delete(f"/servers/{sid}").status_code == 202
        for n in range(3):
            _publish_line(server, f"after delete {n}")
            assert f"after delete {n}".encode() in _next_matching(got, f"after delete {n}")
        assert not any(_saw(v, "after delete") for v in viewers)
    finally:
        control.close()
        for v in viewers:
            v.close()


def _next_matching(got: queue.Queue[bytes], text: str) -> bytes:
    while True:
        payload = got.get(timeout=15)
        if text.encode() in payload:
            return payload
