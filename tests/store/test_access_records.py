"""The contract for issue 4's access patterns, unchanged on DynamoDB (moto) and PostgreSQL:
accounts found by email, subusers listed and removed, a user's grants on a server found for
revocation, the admins' log of everything, rate counters read without counting, and the
request's origin stamped on every audit entry. Plus the PostgreSQL policies for subusers
managing subusers."""

from __future__ import annotations

import time

import pytest
from chalicelib.store import Conflict, NotFound
from chalicelib.store.base import Store
from chalicelib.store.postgres import PostgresStore
from chalicelib.store.records import REQUEST_ORIGIN, AuditEntry, Grant, Location, Node, Subuser, User

from .conftest import uid
from .test_contract import make_server


def test_an_account_is_found_by_its_email_case_insensitively(store: Store):
    user = User(id=uid("u"), email=f"{uid('Mail')}@Example.test")
    store.as_user(user.id).put_user(user)
    stranger = store.as_user(uid("s"))  # anyone may resolve an email to an id, and only to the id
    assert stranger.user_id_by_email(user.email.upper()) == user.id
    if isinstance(store, PostgresStore):  # the profile itself stays private under RLS
        with pytest.raises(NotFound):
            stranger.get_user(user.id)
    with pytest.raises(NotFound):
        stranger.user_id_by_email(f"nobody-{uid()}@example.test")


def test_subusers_are_listed_created_once_and_removed(store: Store, node: Node):
    owner, a, b = uid("o"), uid("a"), uid("b")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    me.put_subuser(Subuser(server_id=server.id, user_id=b, permissions=["console.read"], email="b@x.test"))
    me.put_subuser(Subuser(server_id=server.id, user_id=a, permissions=["user.read"]))
    with pytest.raises(Conflict):  # version 0 means create: a second invite does not overwrite
        me.put_subuser(Subuser(server_id=server.id, user_id=a, permissions=list("x")))
    listed = me.list_subusers(server.id)
    assert [(s.user_id, s.permissions) for s in listed] == sorted([(a, ["user.read"]), (b, ["console.read"])])
    assert next(s for s in listed if s.user_id == b).email == "b@x.test"
    me.delete_subuser(server.id, a)
    with pytest.raises(NotFound):
        me.delete_subuser(server.id, a)
    assert [s.user_id for s in me.list_subusers(server.id)] == [b]
    other = make_server(store, node, owner, [])
    assert me.list_subusers(other.id) == []


def test_grants_are_found_by_server_and_user_for_revocation(store: Store, node: Node):
    owner, friend = uid("o"), uid("f")
    server, other = make_server(store, node, owner, []), make_server(store, node, owner, [])
    store.as_user(owner).put_subuser(Subuser(server_id=server.id, user_id=friend, permissions=["console.read"]))
    mine = [Grant(username=uid("v"), user_id=owner, server_id=server.id, node_id=node.id, expires_at=time.time() + 60)
            for _ in range(2)]
    theirs = Grant(username=uid("v"), user_id=friend, server_id=server.id, node_id=node.id,
                   expires_at=time.time() - 10)  # expired but not yet swept: revocation must still reach it
    elsewhere = Grant(username=uid("v"), user_id=owner, server_id=other.id, node_id=node.id,
                      expires_at=time.time() + 60)
    for g in mine + [elsewhere]:
        store.as_user(owner).put_grant(g)
    store.as_user(friend).put_grant(theirs)
    admin = store.as_admin("revocation")
    assert {g.username for g in admin.list_grants(server.id, friend)} == {theirs.username}
    assert {g.username for g in admin.list_grants(server.id, owner)} == {g.username for g in mine}
    assert {g.username for g in admin.list_grants(server.id)} == {g.username for g in mine} | {theirs.username}
    admin.delete_grant(theirs.username)
    assert admin.list_grants(server.id, friend) == []


def test_the_whole_log_is_paged_newest_first_for_admins_only(store: Store, node: Node):
    owner = uid("o")
    server = make_server(store, node, owner, [])
    base = time.time() + 10_000 + float(int(uid()[:6], 16) % 1000)  # newer than anything else in this store
    me = store.as_user(owner)
    me.add_audit(AuditEntry(actor_id=owner, action="x.account", ts=base + 1))  # no server: an account entry
    for i in range(3):
        me.add_audit(AuditEntry(actor_id=owner, action=f"x.server{i}", server_id=server.id, ts=base + 2 + i))
    admin = store.as_admin("activity")
    seen, cursor = [], None
    while len(seen) < 4:
        page = admin.list_audit_all(3, cursor)
        seen += [e.action for e in page if e.ts >= base]
        cursor = page.cursor
        assert cursor is not None
    assert seen == ["x.server2", "x.server1", "x.server0", "x.account"]
    assert me.list_audit_all(10) == []  # a user does not read the whole log


def test_rate_counters_can_be_read_without_counting(store: Store):
    bucket, t = uid("b:"), 2_000_010.0
    assert store.peek_hits(bucket, 60, t) == 0
    store.count_hit(bucket, 60, t)
    store.count_hit(bucket, 60, t + 1)
    assert store.peek_hits(bucket, 60, t + 2) == 2
    assert store.peek_hits(bucket, 60, t + 2) == 2  # reading did not add
    assert store.peek_hits(bucket, 60, t + 60) == 0  # the next window starts at zero


def test_audit_entries_carry_the_request_origin(store: Store, node: Node):
    owner = uid("o")
    server = make_server(store, node, owner, [])
    token = REQUEST_ORIGIN.set({"source_ip": "203.0.113.9", "user_agent": "curl/8"})
    try:
        store.as_user(owner).add_audit(AuditEntry(actor_id=owner, action="x.origin", server_id=server.id))
        store.as_user(owner).add_audit(AuditEntry(actor_id=owner, action="x.given", server_id=server.id,
                                                  source_ip="198.51.100.1"))
    finally:
        REQUEST_ORIGIN.reset(token)
    entries = {e.action: e for e in store.as_user(owner).list_audit(server.id)}
    assert (entries["x.origin"].source_ip, entries["x.origin"].user_agent) == ("203.0.113.9", "curl/8")
    assert (entries["x.given"].source_ip, entries["x.given"].user_agent) == ("198.51.100.1", "curl/8")
    assert entries["server.create"].source_ip is None  # written outside any request


# -- PostgreSQL: subusers managing subusers under row-level security ----------------------------------


@pytest.fixture
def shared(pg_store: PostgresStore) -> dict[str, str]:
    admin = pg_store.as_admin("rls fixture")
    loc = Location(id=uid("loc"), name="x")
    admin.create_location(loc)
    node = Node(id=uid("n"), name="n", location_id=loc.id, memory_mb=1, disk_mb=1, port_start=1, port_end=9)
    admin.put_node(node)
    owner, manager, viewer = uid("own"), uid("mgr"), uid("vw")
    server = make_server(pg_store, node, owner, [])
    me = pg_store.as_user(owner)
    me.put_subuser(Subuser(server_id=server.id, user_id=manager, permissions=["user.read", "user.create"]))
    me.put_subuser(Subuser(server_id=server.id, user_id=viewer, permissions=["console.read"]))
    return {"server": server.id, "owner": owner, "manager": manager, "viewer": viewer}


def test_a_subuser_manages_subusers_only_as_far_as_their_nodes_go(pg_store: PostgresStore, shared):
    sid = shared["server"]
    manager, viewer = pg_store.as_user(shared["manager"]), pg_store.as_user(shared["viewer"])
    assert {s.user_id for s in manager.list_subusers(sid)} == {shared["manager"], shared["viewer"]}
    assert {s.user_id for s in viewer.list_subusers(sid)} == {shared["viewer"]}  # only their own row
    manager.put_subuser(Subuser(server_id=sid, user_id=uid("new"), permissions=["console.read"]))  # user.create
    with pytest.raises(NotFound):  # no user.create: the policy refuses the insert
        viewer.put_subuser(Subuser(server_id=sid, user_id=uid("x"), permissions=[]))
    row = manager.get_subuser(sid, shared["viewer"])
    row.permissions = []
    with pytest.raises(Conflict):  # no user.update: the update matches no row
        manager.put_subuser(row)
    with pytest.raises(NotFound):  # no user.delete
        manager.delete_subuser(sid, shared["viewer"])
    assert pg_store.as_user(shared["owner"]).get_subuser(sid, shared["viewer"]).permissions == ["console.read"]
