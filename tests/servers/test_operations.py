"""Server operations end-to-end through the API, the broker and a real agent (process runtime)."""

from __future__ import annotations

import pytest
from livewire import wait_status


@pytest.fixture(scope="module")
def admin(make_user):
    return make_user(admin=True)


def test_rename_and_description(owner, stranger):
    sid = owner.post("/servers", {"name": "Before", "blueprint_id": "demo", "location_id": "local"}).json()["id"]
    try:
        r = owner.post(f"/servers/{sid}/settings", {"name": "After", "description": "my world"})
        assert r.status_code == 200, r.text
        got = owner.get(f"/servers/{sid}").json()
        assert got["name"] == "After" and got["description"] == "my world"
        bad = owner.post(f"/servers/{sid}/settings", {"name": "bad\nname"})
        assert bad.status_code == 422 and "name" in bad.json()["error"]["fields"]
        assert stranger.post(f"/servers/{sid}/settings", {"name": "Mine"}).status_code == 404
    finally:
        owner.delete(f"/servers/{sid}")


def test_suspended_server_is_stopped_and_refuses_power(owner, admin):
    sid = owner.post("/servers", {"name": "Sus", "blueprint_id": "demo", "location_id": "local"}).json()["id"]
    try:
        wait_status(owner, sid, "offline")
        assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
        wait_status(owner, sid, "running")
        assert owner.post("/admin/suspensions", {"server_id": sid, "suspended": True}).status_code == 404
        r = admin.post("/admin/suspensions", {"server_id": sid, "suspended": True})
        assert r.status_code == 200 and r.json()["suspended"] is True, r.text
        wait_status(owner, sid, "offline")
        for action in ("start", "restart"):
            r = owner.post(f"/servers/{sid}/power", {"action": action})
            assert r.status_code == 409 and r.json()["error"]["code"] == "suspended"
        assert admin.post("/admin/suspensions", {"server_id": sid, "suspended": False}).json()["suspended"] is False
        assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
        wait_status(owner, sid, "running")
        owner.post(f"/servers/{sid}/power", {"action": "kill"})
        wait_status(owner, sid, "offline")
    finally:
        owner.delete(f"/servers/{sid}")
