"""The store contract, run unchanged against DynamoDB (moto) and PostgreSQL: conditional
create, optimistic locking, all-or-nothing transactions, cursor pagination, TTL on read."""

from __future__ import annotations

import base64
import json
import time

import pytest
from chalicelib.store import BadCursor, Conflict, NotFound
from chalicelib.store.base import Store
from chalicelib.store.records import Allocation, AuditEntry, Grant, Idempotency, Location, Node, Server, User
from stellar_protocol.messages import Port

from .conftest import uid


def make_server(store: Store, node: Node, owner: str, ports: list[int], sid: str | None = None) -> Server:
    """Create a server as ``owner`` with its ports and an audit entry, in one transaction."""
    sid = sid or uid("srv")
    server = Server(id=sid, name="s", owner_id=owner, node_id=node.id, location_id=node.location_id,
                    blueprint_id="demo", image="img", variables={}, memory_mb=256, disk_mb=512,
                    cpu_percent=100, ports=[Port(ip=node.address, port=p) for p in ports])
    allocs = [Allocation(node_id=node.id, ip=node.address, port=p, server_id=sid) for p in ports]
    store.as_user(owner).create_server(server, allocs, AuditEntry(actor_id=owner, action="server.create",
                                                                  server_id=sid))
    return server


# -- conditional create -----------------------------------------------------------------------


def test_conditional_create_raises_one_conflict(store: Store, node: Node):
    admin = store.as_admin("test")
    loc = Location(id=node.location_id, name="again")
    with pytest.raises(Conflict):
        admin.create_location(loc)
    owner = uid("u")
    make_server(store, node, owner, [30000])
    with pytest.raises(Conflict):  # one allocation per ip:port
        make_server(store, node, owner, [30000])


def test_email_is_unique_and_moves_with_the_user(store: Store):
    a, b = uid("a"), uid("b")
    email = f"{uid()}@x.test"
    ua = User(id=a, email=email)
    store.as_user(a).put_user(ua)
    with pytest.raises(Conflict):
        store.as_user(b).put_user(User(id=b, email=email.upper()))
    ua.email = f"{uid()}@x.test"
    store.as_user(a).put_user(ua)  # frees the old address...
    store.as_user(b).put_user(User(id=b, email=email))  # ...for someone else
    assert store.as_user(b).get_user(b).email == email


# -- optimistic locking -------------------------------------------------------------------------


def test_every_write_bumps_the_version_and_a_stale_write_is_refused(store: Store, node: Node):
    admin = store.as_admin("test")
    first, second = admin.get_node(node.id), admin.get_node(node.id)
    assert first.version == second.version >= 1
    first.memory_mb = 1234
    admin.put_node(first)
    assert first.version == second.version + 1
    second.memory_mb = 9999
    with pytest.raises(Conflict):
        admin.put_node(second)
    assert admin.get_node(node.id).memory_mb == 1234  # refused, never lost
    user = User(id=uid("u"), email=f"{uid()}@x.test")
    store.as_user(user.id).put_user(user)
    stale = store.as_user(user.id).get_user(user.id)
    user.admin = True
    store.as_user(user.id).put_user(user)
    with pytest.raises(Conflict):
        store.as_user(user.id).put_user(stale)


def test_update_server_is_compare_and_set(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [30001])
    me = store.as_user(owner)
    a, b = me.get_server(server.id), me.get_server(server.id)
    a.name = "winner"
    me.update_server(a)
    b.name = "loser"
    with pytest.raises(Conflict):
        me.update_server(b)
    assert me.get_server(server.id).name == "winner"
    assert me.get_server(server.id).version == a.version == 2


def test_apply_state_keeps_the_newest_and_bumps_the_version(store: Store, node: Node):
    server = make_server(store, node, uid("u"), [30002])
    system = store.as_admin("ingestion test")
    assert system.apply_state(server.id, "running", 5, None)
    assert not system.apply_state(server.id, "offline", 3, "late")
    assert not system.apply_state("nope" + server.id, "running", 9, None)
    got = system.get_server(server.id)
    assert (got.status, got.state_seq, got.version) == ("running", 5, 2)


def test_node_status_ignores_older_reports(store: Store, node: Node):
    system = store.as_admin("ingestion test")
    system.set_node_status(node.id, "online", 200.0, "process", False)
    system.set_node_status(node.id, "offline", 100.0, None, None)
    got = system.get_node(node.id)
    assert (got.status, got.last_seen, got.runtime, got.isolated) == ("online", 200.0, "process", False)
    with pytest.raises(NotFound):
        system.set_node_status(uid("ghost"), "online", 1.0, None, None)


# -- transactions ----------------------------------------------------------------------------------


def test_create_server_is_all_or_nothing(store: Store, node: Node):
    owner = uid("u")
    make_server(store, node, owner, [30003])
    loser = uid("srv")
    with pytest.raises(Conflict):  # 30004 is free, 30003 is not: neither is taken, nothing written
        make_server(store, node, owner, [30004, 30003], sid=loser)
    admin = store.as_admin("test")
    with pytest.raises(NotFound):
        admin.get_server(loser)
    assert 30004 not in {a.port for a in admin.allocations(node.id)}
    assert list(admin.list_audit(loser)) == []


def test_delete_server_takes_ports_and_subusers_and_refuses_a_stale_version(store: Store, node: Node):
    from chalicelib.store.records import Subuser

    owner, friend = uid("u"), uid("f")
    server = make_server(store, node, owner, [30005, 30006])
    me = store.as_user(owner)
    me.put_subuser(Subuser(server_id=server.id, user_id=friend, permissions=["console.read"]))
    fresh = me.get_server(server.id)
    fresh.name = "renamed"
    me.update_server(fresh)
    with pytest.raises(Conflict):  # ``server`` is stale now: nothing may be deleted
        me.delete_server(server, AuditEntry(actor_id=owner, action="server.delete", server_id=server.id))
    admin = store.as_admin("test")
    assert {30005, 30006} <= {a.port for a in admin.allocations(node.id)}
    me.delete_server(fresh, AuditEntry(actor_id=owner, action="server.delete", server_id=server.id))
    with pytest.raises(NotFound):
        admin.get_server(server.id)
    assert not {30005, 30006} & {a.port for a in admin.allocations(node.id)}
    with pytest.raises(NotFound):
        admin.get_subuser(server.id, friend)
    assert [e.action for e in admin.list_audit(server.id)] == ["server.delete", "server.create"]


# -- pagination ---------------------------------------------------------------------------------------


def _walk(fetch, limit: int) -> tuple[list[str], list[int]]:
    ids, sizes, cursor = [], [], None
    while True:
        page = fetch(limit, cursor)
        ids += [r.id for r in page]
        sizes.append(len(page))
        cursor = page.cursor
        if cursor is None:
            return ids, sizes


def test_cursor_pagination_walks_every_list_once_in_key_order(store: Store, node: Node):
    from chalicelib.store.records import Subuser

    owner, friend = uid("u"), uid("f")
    made = sorted(make_server(store, node, owner, [], sid=f"{uid('p')}").id for _ in range(7))
    me = store.as_user(owner)
    for sid in made[:5]:
        me.put_subuser(Subuser(server_id=sid, user_id=friend, permissions=[]))
    assert _walk(lambda n, c: me.list_servers_owned(owner, n, c), 3) == (made, [3, 3, 1])
    assert _walk(lambda n, c: me.list_servers_owned(owner, n, c), 7) == (made, [7])
    assert list(s.id for s in me.list_servers_owned(owner)) == made  # no limit: everything
    them = store.as_user(friend)
    assert _walk(lambda n, c: them.list_servers_shared(friend, n, c), 2) == (made[:5], [2, 2, 1])
    admin = store.as_admin("test")
    on_node, _ = _walk(lambda n, c: admin.list_servers_on_node(node.id, n, c), 4)
    assert on_node == sorted(on_node) and set(made) <= set(on_node)


def test_audit_pages_newest_first(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    for i in range(5):
        me.add_audit(AuditEntry(actor_id=owner, action=f"a{i}", server_id=server.id, ts=time.time() + i + 1))
    actions, cursor = [], None
    while True:
        page = me.list_audit(server.id, 2, cursor)
        actions += [e.action for e in page]
        if not (cursor := page.cursor):
            break
    assert actions == ["a4", "a3", "a2", "a1", "a0", "server.create"]


def test_a_cursor_is_opaque_bound_to_its_list_and_checked(store: Store, node: Node):
    owner, other = uid("u"), uid("o")
    for _ in range(2):
        make_server(store, node, owner, [])
    me = store.as_user(owner)
    cursor = me.list_servers_owned(owner, 1).cursor
    assert cursor is not None and set(json.loads(base64.urlsafe_b64decode(cursor + "==="))) == {"q", "k"}
    with pytest.raises(BadCursor):  # replayed on another list
        me.list_servers_owned(other, 1, cursor)
    with pytest.raises(BadCursor):
        me.list_servers_owned(owner, 1, "not-a-cursor!")


def test_both_backends_issue_the_same_cursor(dynamo_endpoint, pg_store):
    from chalicelib.store.dynamo import DynamoStore

    endpoint, table = dynamo_endpoint
    owner, cursors = uid("u"), []
    for backend in (DynamoStore(table, "us-east-1", host=endpoint), pg_store):
        admin = backend.as_admin("test")
        loc = Location(id=uid("loc"), name="x")
        admin.create_location(loc)
        n = Node(id=uid("n"), name="n", location_id=loc.id, memory_mb=1, disk_mb=1, port_start=1, port_end=2)
        admin.put_node(n)
        for sid in ("s-a", "s-b", "s-c"):
            make_server(backend, n, owner, [], sid=f"{owner}{sid}")
        cursors.append(backend.as_user(owner).list_servers_owned(owner, 2).cursor)
    assert cursors[0] == cursors[1] is not None


# -- expiry (TTL honoured on read) -------------------------------------------------------------------


def test_expired_grants_are_gone_on_read_and_may_be_reissued(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    dead = Grant(username=uid("v"), user_id=owner, server_id=server.id, node_id=node.id,
                 expires_at=time.time() - 2 * 3600)  # past expiry and past the sweeper's hour
    me.put_grant(dead)
    with pytest.raises(NotFound):
        me.get_grant(dead.username)
    assert dead.username in {g.username for g in store.as_admin("sweeper").expired_grants(time.time())}
    live = Grant(username=dead.username, user_id=owner, server_id=server.id, node_id=node.id,
                 expires_at=time.time() + 600)
    me.put_grant(live)  # the expired row does not block the name
    assert me.get_grant(live.username).expires_at == live.expires_at
    with pytest.raises(Conflict):
        me.put_grant(live.model_copy())


def test_idempotency_records_expire_and_lock(store: Store):
    user = uid("u")
    me = store.as_user(user)
    old = Idempotency(user_id=user, key="k1", request_hash="h", expires_at=time.time() - 1)
    me.claim_idempotency(old)
    with pytest.raises(NotFound):
        me.get_idempotency(user, "k1")
    rec = Idempotency(user_id=user, key="k1", request_hash="h2", expires_at=time.time() + 60)
    me.claim_idempotency(rec)
    with pytest.raises(Conflict):
        me.claim_idempotency(rec.model_copy(update={"version": 0}))
    stale = me.get_idempotency(user, "k1")
    rec.status, rec.response = "done", {"status": 201}
    me.finish_idempotency(rec)
    with pytest.raises(Conflict):
        me.finish_idempotency(stale)
    got = me.get_idempotency(user, "k1")
    assert (got.status, got.response, got.request_hash) == ("done", {"status": 201}, "h2")


def test_rate_counter_counts_per_window(store: Store):
    bucket, t = uid("ip:"), 1_000_020.0
    hits = [store.count_hit(bucket, 60, t) for _ in range(3)]
    assert hits == [1, 2, 3]
    assert store.count_hit(bucket, 60, t + 60) == 1


# -- access patterns ---------------------------------------------------------------------------------


def test_the_dynamodb_backend_never_scans():
    from pathlib import Path

    import chalicelib.store.dynamo as mod

    src = Path(mod.__file__).read_text()
    assert ".scan(" not in src and "Scan" not in src
