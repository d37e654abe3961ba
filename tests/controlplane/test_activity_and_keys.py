"""The activity log (per server with activity.read, everything for admins, paged by cursor)
and API keys (shown once, hashed, scoped to nodes and optionally one server, revocable)."""

from __future__ import annotations

import requests
from livewire import wait_status


def _create(user, name="Logged"):
    r = user.post("/servers", {"name": name, "blueprint_id": "demo", "location_id": "local"})
    assert r.status_code == 201, r.text
    wait_status(user, r.json()["id"], "offline")
    return r.json()


def _walk(user, path, limit):
    """Every page of a cursor-paged list; returns (entries, page sizes)."""
    out, sizes, cursor = [], [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = requests.get(f"{user.base}{path}", params=params, headers={**user.headers, "User-Agent": "activity-test/1"},
                         timeout=15)
        assert r.status_code == 200, r.text
        out += r.json()
        sizes.append(len(r.json()))
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            return out, sizes


def test_every_mutation_is_in_the_server_log_with_who_where_and_what(owner, make_user):
    server = _create(owner)
    sid = server["id"]
    friend = make_user()
    requests.post(f"{owner.base}/servers/{sid}/subusers",
                  json={"email": friend.email, "permissions": ["activity.read"]},
                  headers={**owner.headers, "User-Agent": "panel-test/2"}, timeout=15).raise_for_status()
    requests.patch(f"{owner.base}/servers/{sid}/subusers/{friend.id}",
                   json={"permissions": ["activity.read", "settings.read"]}, headers=owner.headers,
                   timeout=15).raise_for_status()
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202

    entries, sizes = _walk(friend, f"/servers/{sid}/activity", 2)  # a subuser with activity.read reads it
    assert sizes[0] == 2 and len(entries) == sum(sizes)
    actions = [e["action"] for e in entries]
    assert actions == ["server.power.start", "subuser.update", "subuser.create", "server.create"]  # newest first
    invite = entries[2]
    assert invite["actor_id"] == owner.id and invite["target"] == f"user:{friend.id}"
    assert invite["source_ip"] and invite["user_agent"] == "panel-test/2"
    assert invite["details"] == {"permissions": "activity.read"}
    assert entries[1]["details"] == {"added": "settings.read", "removed": ""}
    assert all(e["user_agent"] for e in entries)  # even mutations whose code passes none get the request's

    r = owner.get(f"/servers/{sid}/activity", params={"limit": 0})
    assert r.status_code == 422
    r = owner.get(f"/servers/{sid}/activity", params={"cursor": "bm9wZQ"})
    assert r.status_code == 422 and "cursor" in r.json()["error"]["fields"]
    other = _create(owner, "Other")
    first = owner.get(f"/servers/{sid}/activity", params={"limit": 1})
    r = owner.get(f"/servers/{other['id']}/activity", params={"limit": 1, "cursor": first.headers["X-Next-Cursor"]})
    assert r.status_code == 422  # a cursor is bound to its own server's log


def test_admins_read_everything_and_others_do_not_see_the_admin_log(stack, owner, make_user):
    admin = make_user(admin=True)
    server = _create(owner, "Audited")
    assert owner.get("/admin/activity").status_code == 404
    entries, _ = _walk(admin, "/admin/activity", 50)
    mine = [e for e in entries if e["server_id"] == server["id"]]
    assert [e["action"] for e in mine] == ["server.create"]
    assert [e["ts"] for e in entries] == sorted((e["ts"] for e in entries), reverse=True)


def test_api_keys_are_shown_once_scoped_and_revocable(owner, make_user):
    a, b = _create(owner, "KeyA"), _create(owner, "KeyB")
    r = owner.post("/me/api-keys", {"name": "ci", "permissions": ["settings.read", "activity.read"],
                                    "server_id": a["id"], "expires_in_days": 30})
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["token"]
    assert token.startswith("stk_") and created["expires_at"] > created["created_at"]
    listed = owner.get("/me/api-keys").json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "token" not in listed[0] and token not in str(listed) and listed[0]["last_used_at"] is None
    key = {"Authorization": f"Bearer {token}"}

    def call(method, path, body=None):
        return requests.request(method, f"{owner.base}{path}", json=body, headers=key, timeout=15)

    assert call("GET", f"/servers/{a['id']}").status_code == 200
    assert call("GET", f"/servers/{a['id']}/activity").status_code == 200
    assert call("GET", f"/servers/{b['id']}").status_code == 404  # bound to server A: B does not exist for it
    r = call("POST", f"/servers/{a['id']}/power", {"action": "start"})
    assert r.status_code == 403 and "control.start" in r.json()["error"]["message"]  # not among the key's nodes
    assert [s["id"] for s in call("GET", "/servers").json()] == [a["id"]]
    assert call("GET", "/me").json()["id"] == owner.id
    # Keys never manage keys, change the password or sign out; nor create servers or reach the admin API.
    assert call("POST", "/me/api-keys", {"name": "x", "permissions": ["settings.read"]}).status_code == 403
    assert call("GET", "/me/api-keys").status_code == 403
    assert call("DELETE", f"/me/api-keys/{created['id']}").status_code == 403
    assert call("POST", "/me/password", {"current_password": owner.password,
                                         "new_password": "Another-Passw0rd"}).status_code == 403
    assert call("POST", "/servers", {"name": "x", "blueprint_id": "demo", "location_id": "local"}).status_code == 403
    assert owner.get("/me/api-keys").json()[0]["last_used_at"] is not None  # last use recorded

    wide = owner.post("/me/api-keys", {"name": "all", "permissions": ["settings.read"]}).json()
    for s in (a, b):
        assert requests.get(f"{owner.base}/servers/{s['id']}", headers={"Authorization": f"Bearer {wide['token']}"},
                            timeout=15).status_code == 200

    assert owner.delete(f"/me/api-keys/{created['id']}").status_code == 200
    assert call("GET", f"/servers/{a['id']}").status_code == 401
    assert {k["id"]: k["revoked"] for k in owner.get("/me/api-keys").json()}[created["id"]] is True
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = requests.get(f"{owner.base}/me", headers={"Authorization": f"Bearer {forged}"}, timeout=15)
    assert r.status_code == 401
    assert make_user().delete(f"/me/api-keys/{wide['id']}").status_code == 404  # only one's own keys


def test_a_key_never_outgrows_its_user(owner, make_user):
    server = _create(owner, "Narrow")
    sid = server["id"]
    friend = make_user()
    owner.post(f"/servers/{sid}/subusers", {"email": friend.email, "permissions": ["settings.read"]})
    both = ["settings.read", "settings.delete"]
    r = friend.post("/me/api-keys", {"name": "k", "permissions": both, "server_id": sid})
    assert r.status_code == 403 and "settings.delete" in r.json()["error"]["message"]
    r = friend.post("/me/api-keys", {"name": "k", "permissions": ["not.a-node"]})
    assert r.status_code == 422 and "permissions" in r.json()["error"]["fields"]
    r = friend.post("/me/api-keys", {"name": "k", "permissions": ["settings.read"], "server_id": "nosuchserver"})
    assert r.status_code == 422
    # An unbound key may name any node, but a request still needs the user's own node there and then.
    token = friend.post("/me/api-keys", {"name": "k", "permissions": both}).json()["token"]
    key = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{owner.base}/servers/{sid}", headers=key, timeout=15).status_code == 200
    assert requests.delete(f"{owner.base}/servers/{sid}", headers=key, timeout=15).status_code == 403
    requests.patch(f"{owner.base}/servers/{sid}/subusers/{friend.id}", json={"permissions": []},
                   headers=owner.headers, timeout=15).raise_for_status()
    assert requests.get(f"{owner.base}/servers/{sid}", headers=key, timeout=15).status_code == 403
