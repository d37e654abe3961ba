"""GET /api/servers pages with ?limit=&cursor=: still a JSON array (the web app reads it as one),
the next page's cursor in X-Next-Cursor; owned servers first, then shared ones. And, on this
DynamoDB stack, an admin reading someone else's server leaves an audit entry on it."""

from __future__ import annotations

from chalicelib.store import get_store
from chalicelib.store.records import AuditEntry, Server, Subuser


def _seed(stack, owner_id: str, other_id: str, n_owned: int, n_shared: int) -> tuple[list[str], list[str]]:
    """Servers written straight into the stack's store: paging needs rows, not running games."""
    store = get_store().as_admin("paging test seed")
    owned, shared = [], []
    for i in range(n_owned + n_shared):
        mine = i < n_owned
        sid = f"pg{owner_id[:6]}{i:02d}"
        server = Server(id=sid, name=f"s{i}", owner_id=owner_id if mine else other_id, node_id=stack.opts.node_id,
                        location_id="local", blueprint_id="demo", image="img", variables={}, memory_mb=16,
                        disk_mb=16, cpu_percent=10, ports=[])
        store.create_server(server, [], AuditEntry(actor_id="test", action="server.create", server_id=sid))
        if not mine:
            store.put_subuser(Subuser(server_id=sid, user_id=owner_id, permissions=["settings.read"]))
        (owned if mine else shared).append(sid)
    return sorted(owned), sorted(shared)


def test_servers_list_pages_owned_then_shared_behind_one_cursor(stack, make_user):
    me, other = make_user(), make_user()
    owned, shared = _seed(stack, me.id, other.id, 3, 2)
    everything = me.get("/servers")
    assert everything.status_code == 200 and "X-Next-Cursor" not in everything.headers
    assert sorted(s["id"] for s in everything.json()) == sorted(owned + shared)  # unpaged: all, as before
    seen, sizes, cursor = [], [], None
    while True:
        r = me.get("/servers", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        assert isinstance(r.json(), list)
        seen += [s["id"] for s in r.json()]
        sizes.append(len(r.json()))
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == owned + shared and sizes == [2, 2, 1]
    assert [s["id"] for s in other.get("/servers", params={"limit": 10}).json()] == shared


def test_bad_paging_parameters_are_422(stack, make_user):
    me, other = make_user(), make_user()
    _seed(stack, me.id, other.id, 2, 0)
    cursor = me.get("/servers", params={"limit": 1}).headers["X-Next-Cursor"]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"limit": 1, "cursor": "garbage"}):
        r = me.get("/servers", params=params)
        assert r.status_code == 422, (params, r.text)
    r = other.get("/servers", params={"limit": 1, "cursor": cursor})  # another user's cursor
    assert r.status_code == 422 and "cursor" in r.json()["error"]["fields"]


def test_an_admin_reading_someone_elses_server_is_audited_on_dynamodb(stack, make_user):
    owner, other, admin = make_user(), make_user(), make_user(admin=True)
    (sid,), _ = _seed(stack, owner.id, other.id, 1, 0)
    assert owner.get(f"/servers/{sid}").status_code == 200  # the owner: nothing to record
    assert admin.get(f"/servers/{sid}").status_code == 200
    trail = get_store().as_user(owner.id).list_audit(sid)
    assert [(e.action, e.actor_id) for e in trail if e.action.startswith("admin.")] == [("admin.access", admin.id)]
