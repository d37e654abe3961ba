"""Authorization matrix generated from the route table: every server-scoped route is called
as the owner (2xx), as a subuser holding every permission but the route's (403), as a user
with no access (404: existence is not leaked), and without a token (401); nested resources
are also asked for with an id that belongs to another server (404). A new route that is not
covered here fails the test, so coverage cannot silently fall behind.

Placeholders in paths and bodies (``{user_id}``, ``{invitee_email}``) are filled from the
world fixture: ``invitee`` is an account the owner invites, edits and removes as a subuser."""

from __future__ import annotations

import pytest
import requests
from chalicelib import permissions
from chalicelib.api.routing import ROUTE_META
from chalicelib.store import get_store
from chalicelib.store.records import Subuser
from livewire import wait_status

# One request per server-scoped route, in an order that keeps the server usable; the owner
# must get a 2xx for each. Delete runs last.
EXAMPLES: list[tuple[str, str, dict | None]] = [
    ("GET", "/api/servers/{server_id}", None),
    ("POST", "/api/servers/{server_id}/settings", {"name": "Matrix renamed", "description": "issue 7"}),
    ("GET", "/api/servers/{server_id}/permissions", None),
    ("GET", "/api/servers/{server_id}/activity", None),
    ("GET", "/api/servers/{server_id}/subusers", None),
    ("POST", "/api/servers/{server_id}/subusers", {"email": "{invitee_email}", "permissions": ["console.read"]}),
    ("PATCH", "/api/servers/{server_id}/subusers/{user_id}", {"permissions": ["console.read", "stats.read"]}),
    ("DELETE", "/api/servers/{server_id}/subusers/{user_id}", None),
    # startup and ports (issue 7)
    ("GET", "/api/servers/{server_id}/startup", None),
    ("PATCH", "/api/servers/{server_id}/startup", {"variables": {"SERVER_NAME": "Matrix World"}}),
    ("PATCH", "/api/servers/{server_id}/image", {"image": "default"}),
    ("GET", "/api/servers/{server_id}/allocations", None),
    ("POST", "/api/servers/{server_id}/allocations", {}),
    ("DELETE", "/api/servers/{server_id}/allocations/{port}", None),
    ("POST", "/api/servers/{server_id}/console-grant", None),
    ("POST", "/api/servers/{server_id}/console/backlog", None),
    # file manager (issue 8): each step leaves what the next one needs
    ("POST", "/api/servers/{server_id}/files/create-directory", {"path": "/m"}),
    ("POST", "/api/servers/{server_id}/files/write", {"path": "/m/a.txt", "content": "x"}),
    ("GET", "/api/servers/{server_id}/files/list", None),
    ("POST", "/api/servers/{server_id}/files/contents", {"path": "/m/a.txt"}),
    ("POST", "/api/servers/{server_id}/files/copy", {"path": "/m/a.txt", "target": "/m/b.txt"}),
    ("POST", "/api/servers/{server_id}/files/rename", {"path": "/m/b.txt", "target": "/m/c.txt"}),
    ("POST", "/api/servers/{server_id}/files/chmod", {"path": "/m/c.txt", "mode": "600"}),
    ("POST", "/api/servers/{server_id}/files/compress", {"paths": ["/m"], "target": "/m.zip", "format": "zip"}),
    ("POST", "/api/servers/{server_id}/files/decompress", {"path": "/m.zip", "target": "/m"}),
    ("POST", "/api/servers/{server_id}/files/upload", None),
    ("POST", "/api/servers/{server_id}/files/pull", {"key": "{upload_key}", "path": "/m/up.bin"}),
    ("POST", "/api/servers/{server_id}/files/download", {"path": "/m/a.txt"}),
    ("POST", "/api/servers/{server_id}/files/delete", {"paths": ["/m", "/m.zip"]}),
    # backups and schedules (issue 8): {backup_id} is a completed backup made by the world fixture
    ("GET", "/api/servers/{server_id}/backups", None),
    ("POST", "/api/servers/{server_id}/backups", {"name": "matrix"}),
    ("POST", "/api/servers/{server_id}/backups/{backup_id}/download", None),
    ("POST", "/api/servers/{server_id}/backups/{backup_id}/restore", {"wipe": False}),
    ("POST", "/api/servers/{server_id}/backups/{backup_id}/lock", {"locked": True}),
    ("POST", "/api/servers/{server_id}/backups/{backup_id}/lock", {"locked": False}),
    ("DELETE", "/api/servers/{server_id}/backups/{backup_id}", None),
    ("GET", "/api/servers/{server_id}/schedules", None),
    ("POST", "/api/servers/{server_id}/schedules", {"name": "matrix", "cron": "0 4 * * *"}),
    ("PATCH", "/api/servers/{server_id}/schedules/{schedule_id}", {"cron": "0 5 * * *"}),
    ("POST", "/api/servers/{server_id}/schedules/{schedule_id}/run", None),
    ("DELETE", "/api/servers/{server_id}/schedules/{schedule_id}", None),
    ("POST", "/api/servers/{server_id}/power", {"action": "start"}),
    ("POST", "/api/servers/{server_id}/command", {"line": "list"}),
    ("POST", "/api/servers/{server_id}/power", {"action": "kill"}),
    ("POST", "/api/servers/{server_id}/power", {"action": "restart"}),
    ("POST", "/api/servers/{server_id}/power", {"action": "stop"}),
    ("POST", "/api/servers/{server_id}/reinstall", None),
    ("POST", "/api/servers/{server_id}/blueprint", {"blueprint_id": "demo", "variables": {"SERVER_NAME": "Again"}}),
    ("DELETE", "/api/servers/{server_id}", None),
]
# Nested resources: the same request naming a resource of the *other* server must be a 404.
FOREIGN = {("PATCH", "/api/servers/{server_id}/subusers/{user_id}"): "foreign_user_id",
           ("DELETE", "/api/servers/{server_id}/subusers/{user_id}"): "foreign_user_id",
           ("DELETE", "/api/servers/{server_id}/allocations/{port}"): "foreign_port",
           # issue 8: another server's backup or schedule, named under this server
           **{(m, p): "foreign_backup_id" for m, p in (
               ("POST", "/api/servers/{server_id}/backups/{backup_id}/download"),
               ("POST", "/api/servers/{server_id}/backups/{backup_id}/restore"),
               ("POST", "/api/servers/{server_id}/backups/{backup_id}/lock"),
               ("DELETE", "/api/servers/{server_id}/backups/{backup_id}"))},
           **{(m, p): "foreign_schedule_id" for m, p in (
               ("PATCH", "/api/servers/{server_id}/schedules/{schedule_id}"),
               ("POST", "/api/servers/{server_id}/schedules/{schedule_id}/run"),
               ("DELETE", "/api/servers/{server_id}/schedules/{schedule_id}"))}}
# Each power step moves away from the status it starts in, so waiting for the next status
# can never be satisfied by a stale one.
WAIT_FOR = {("POST", "/api/servers/{server_id}/power", "start"): "running",
            ("POST", "/api/servers/{server_id}/power", "kill"): "offline",
            ("POST", "/api/servers/{server_id}/power", "restart"): "running",
            ("POST", "/api/servers/{server_id}/power", "stop"): "offline"}


def _server_routes(app):
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            meta = ROUTE_META[entry.view_function]
            if meta.permission is not None:
                yield method, path, meta


def _permission(meta, body):
    return meta.permission if isinstance(meta.permission, str) else meta.permission(meta.body.model_validate(body))


def test_every_server_route_has_an_example(stack):
    covered = {(m, p) for m, p, _ in EXAMPLES}
    missing = {(m, p) for m, p, _ in _server_routes(stack.app)} - covered
    assert not missing, f"add these routes to the authorization matrix: {sorted(missing)}"


def test_every_route_permission_is_in_the_catalogue(stack):
    for method, path, meta in _server_routes(stack.app):
        if isinstance(meta.permission, str):
            assert meta.permission in permissions.CATALOGUE, (method, path)
    for _m, p, body in EXAMPLES:
        meta = next(meta for m, path, meta in _server_routes(stack.app) if path == p and m == _m)
        body = _fill(body, {})
        assert _permission(meta, body) in permissions.CATALOGUE


@pytest.fixture()
def world(owner, stranger, make_user):
    server = owner.post("/servers", {"name": "Matrix", "blueprint_id": "demo", "location_id": "local"}).json()
    other = owner.post("/servers", {"name": "Other", "blueprint_id": "demo", "location_id": "local"}).json()
    for s in (server, other):
        wait_status(owner, s["id"], "offline")
    sub, invitee, foreign = make_user(), make_user(), make_user()
    r = owner.post(f"/servers/{other['id']}/subusers", {"email": foreign.email, "permissions": ["console.read"]})
    assert r.status_code == 201, r.text
    values = {"invitee_email": invitee.email, "user_id": invitee.id, "foreign_user_id": foreign.id}
    up = owner.post(f"/servers/{server['id']}/files/upload").json()  # an object for files/pull (issue 8)
    assert requests.put(up["url"], data=b"uploaded", timeout=15).status_code == 200
    values["upload_key"] = up["key"]
    for s, suffix in ((server, ""), (other, "foreign_")):  # a completed backup and a schedule on each (issue 8)
        b = owner.post(f"/servers/{s['id']}/backups", {"name": "world"}).json()
        values[f"{suffix}backup_id"] = b["id"]
        sched = owner.post(f"/servers/{s['id']}/schedules", {"name": "w", "cron": "0 3 * * *"}).json()
        values[f"{suffix}schedule_id"] = sched["id"]
    _wait_completed(owner, server["id"], values["backup_id"])
    for s, name in ((server, "port"), (other, "foreign_port")):  # a removable (non-primary) port each (issue 7)
        r = owner.post(f"/servers/{s['id']}/allocations", {})
        assert r.status_code == 201, r.text
        values[name] = str(r.json()[-1]["port"])
    return server, other, sub, values


def _wait_completed(owner, server_id, backup_id, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {b["id"]: b["status"] for b in owner.get(f"/servers/{server_id}/backups").json()["backups"]}
        if found.get(backup_id) == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"backup {backup_id} never completed")


def _fill(obj, values):
    """Placeholders in a path or body replaced by the world's ids and emails."""
    if isinstance(obj, str):
        for name, value in values.items():
            obj = obj.replace("{" + name + "}", value)
        return obj
    if isinstance(obj, dict):
        return {k: _fill(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, values) for v in obj]
    return obj


def test_matrix(stack, owner, stranger, world):
    server, other, sub, values = world
    metas = {(m, p): meta for m, p, meta in _server_routes(stack.app)}
    store = get_store()
    for method, path, raw_body in EXAMPLES:
        meta = metas[(method, path)]
        body = _fill(raw_body, values)
        needed = _permission(meta, body)
        url = _fill(path.removeprefix("/api").replace("{server_id}", server["id"]), values)

        # Subuser holding everything except the needed node: 403 and nothing happens.
        try:
            existing = store.get_subuser(server["id"], sub.id)
            existing.permissions = sorted(permissions.ALL - {needed})
            store.put_subuser(existing)
        except Exception:
            store.put_subuser(Subuser(server_id=server["id"], user_id=sub.id,
                                      permissions=sorted(permissions.ALL - {needed})))
        r = _call(sub, method, url, body)
        assert r.status_code == 403, (method, path, needed, r.status_code, r.text)
        assert r.json()["error"]["message"] == f"missing permission {needed}"

        # No access at all, or no token: 404 / 401, never a hint that the server exists.
        assert _call(stranger, method, url, body).status_code == 404, (method, path)
        assert _call(None, method, url, body, base=owner.base).status_code == 401, (method, path)
        # The owner's own token pointed at a server id that does not exist: 404 as well.
        ghost = _fill(path.removeprefix("/api").replace("{server_id}", "doesnotexist"), values)
        assert _call(owner, method, ghost, body).status_code == 404
        if (method, path) in FOREIGN:  # the owner's server, another server's resource: not found
            key = FOREIGN[(method, path)]  # "foreign_X" stands in for the placeholder X
            foreign = _fill(path.removeprefix("/api").replace("{server_id}", server["id"]),
                            {**values, key.removeprefix("foreign_"): values[key]})
            r = _call(owner, method, foreign, body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)

        r = _call(owner, method, url, body)
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)
        wanted = WAIT_FOR.get((method, path, (body or {}).get("action")))
        if wanted:
            wait_status(owner, server["id"], wanted)
    assert owner.get(f"/servers/{other['id']}").status_code == 200  # the other server was untouched


def _call(user, method, url, body, base=None):
    import requests

    if user is None:
        return requests.request(method, f"{base}{url}", json=body, timeout=15)
    if method == "GET":
        return user.get(url)
    if method == "DELETE":
        return user.delete(url)
    if method == "PATCH":
        return requests.patch(f"{user.base}{url}", json=body, headers=user.headers, timeout=15)
    return user.post(url, body)
