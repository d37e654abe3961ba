"""Store additions for issue 7 on both backends: deleting locations, nodes and users, and the
node fields (enrollment hash, sessions, pending deletions) surviving a round trip."""

from __future__ import annotations

import pytest
from chalicelib.store import Conflict, NotFound
from chalicelib.store.base import Store
from chalicelib.store.records import Location, Node, User

from .conftest import uid
from .test_contract import make_server


def test_a_node_with_servers_cannot_be_deleted(store: Store, node: Node):
    admin = store.as_admin("test")
    server = make_server(store, node, uid("u"), [31500])
    with pytest.raises(Conflict):
        admin.delete_node(admin.get_node(node.id))
    with pytest.raises(Conflict):  # nor its location, while the node is in it
        admin.delete_location(node.location_id)
    admin.delete_server(admin.get_server(server.id), _audit(server.id))
    stale = admin.get_node(node.id)
    stale.name = "renamed"
    admin.put_node(stale)
    with pytest.raises(Conflict):  # a stale version is refused too
        admin.delete_node(Node(**{**stale.model_dump(), "version": stale.version - 1}))
    admin.delete_node(admin.get_node(node.id))
    with pytest.raises(NotFound):
        admin.get_node(node.id)
    admin.delete_location(node.location_id)
    with pytest.raises(NotFound):
        admin.get_location(node.location_id)


def test_node_fields_round_trip_and_location_rename(store: Store):
    admin = store.as_admin("test")
    loc = Location(id=uid("loc"), name="A")
    admin.create_location(loc)
    loc.name = "B"
    admin.update_location(loc)
    assert admin.get_location(loc.id).name == "B"
    node = Node(id=uid("n"), name="n", location_id=loc.id, memory_mb=1, disk_mb=1, port_start=10, port_end=11,
                port_ranges=[(20, 21)], addresses=["198.51.100.1"], enroll_token_hash="ab", enroll_expires_at=5.0,
                session=1.5, pending_deletes=["s1"], heartbeat_s=4.0)
    admin.put_node(node)
    got = admin.get_node(node.id)
    assert got.port_pool() == [10, 11, 20, 21] and got.pending_deletes == ["s1"] and got.session == 1.5
    assert got.enroll_token_hash == "ab" and got.addresses == ["198.51.100.1"]
    admin.delete_node(got)
    admin.delete_location(loc.id)


def test_delete_user_frees_the_email(store: Store):
    admin = store.as_admin("test")
    email = f"{uid('e')}@test.local"
    user = User(id=uid("u"), email=email)
    admin.put_user(user)
    admin.delete_user(user.id)
    admin.delete_user(user.id)  # idempotent
    with pytest.raises(NotFound):
        admin.get_user(user.id)
    admin.put_user(User(id=uid("u"), email=email))  # the email can be claimed again


def _audit(server_id: str):
    from chalicelib.store.records import AuditEntry

    return AuditEntry(actor_id="admin", action="server.delete", server_id=server_id)
