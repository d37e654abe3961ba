"""DynamoDB backend: one table, two GSIs, PynamoDB models.

Key design (the table and its indexes are declared in template.yaml, which a test keeps in
step with ``KEY_SCHEMA`` below):

| record     | pk               | sk                   | gsi1 pk / sk               | gsi2 pk / sk           |
|------------|------------------|----------------------|----------------------------|------------------------|
| user       | USER#id          | PROFILE              |                            |                        |
| location   | LOC#id           | META                 | TYPE#location / name#id    |                        |
| node       | NODE#id          | META                 | LOC#loc / NODE#id          | TYPE#node / id         |
| allocation | NODE#id          | ALLOC#ip#port        | SERVER#sid / ALLOC#ip#port |                        |
| server     | SERVER#sid       | META                 | OWNER#uid / SERVER#sid     | NODE#nid / SERVER#sid  |
| subuser    | SERVER#sid       | SUB#uid              | MEMBER#uid / SERVER#sid    |                        |
| grant      | GRANT#username   | META                 | GRANTS / expiry            |                        |
| audit      | AUDIT#sid        | ts#id                |                            |                        |

Every request-path read is a GetItem or a Query on a key or index: no scans.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from .base import Conflict, NotFound
from .records import Allocation, AuditEntry, Grant, Location, Node, Record, Server, Subuser, User

R = TypeVar("R", bound=Record)

# The shape template.yaml must declare (checked by tests/test_template.py).
KEY_SCHEMA = {
    "table": ("pk", "sk"),
    "indexes": {"gsi1": ("gsi1pk", "gsi1sk"), "gsi2": ("gsi2pk", "gsi2sk")},
    "ttl": "expires",
}


class _Gsi1(GlobalSecondaryIndex["_Item"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class _Gsi2(GlobalSecondaryIndex["_Item"]):
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class _Item(Model):
    class Meta:
        table_name = "unbound"  # set by DynamoStore before first use

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    kind = UnicodeAttribute()
    data = UnicodeAttribute()
    seq = NumberAttribute(null=True)
    version = VersionAttribute()
    expires = TTLAttribute(null=True)

    gsi1 = _Gsi1()
    gsi2 = _Gsi2()


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "cause_response_code", None)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = getattr(exc, "cancellation_reasons", None) or []
        return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)
    return False


class DynamoStore:
    def __init__(self, table_name: str, region: str) -> None:
        _Item.Meta.table_name = table_name
        _Item.Meta.region = region
        _Item._connection = None  # rebind to the new table name
        self._region = region

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _item(kind: str, pk: str, sk: str, record: Record, **keys: Any) -> _Item:
        item = _Item(pk, sk, kind=kind, data=record.model_dump_json(exclude={"version"}), **keys)
        if record.version:
            item.version = record.version
        return item

    @staticmethod
    def _record(model: type[R], item: _Item) -> R:
        record = model.model_validate(json.loads(item.data))
        record.version = int(item.version or 0)
        return record

    def _get(self, model: type[R], pk: str, sk: str) -> R:
        try:
            return self._record(model, _Item.get(pk, sk, consistent_read=True))
        except DoesNotExist:
            raise NotFound(f"{pk}/{sk}") from None

    def _save(self, item: _Item, condition: Any = None) -> None:
        try:
            item.save(condition=condition)
        except PutError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"{item.pk}/{item.sk} changed or exists") from None
            raise

    def _transact(self) -> TransactWrite:
        return TransactWrite(connection=Connection(region=self._region))

    def ping(self) -> bool:
        return bool(_Item.exists())

    # -- users ----------------------------------------------------------------------------

    def put_user(self, user: User) -> None:
        self._save(self._item("user", f"USER#{user.id}", "PROFILE", user))

    def get_user(self, user_id: str) -> User:
        return self._get(User, f"USER#{user_id}", "PROFILE")

    # -- locations and nodes -------------------------------------------------------------

    def create_location(self, location: Location) -> None:
        item = self._item("location", f"LOC#{location.id}", "META", location,
                          gsi1pk="TYPE#location", gsi1sk=f"{location.name}#{location.id}")
        self._save(item, condition=_Item.pk.does_not_exist())

    def list_locations(self) -> list[Location]:
        return [self._record(Location, i) for i in _Item.gsi1.query("TYPE#location")]

    def get_location(self, location_id: str) -> Location:
        return self._get(Location, f"LOC#{location_id}", "META")

    def _node_item(self, node: Node) -> _Item:
        return self._item("node", f"NODE#{node.id}", "META", node, gsi1pk=f"LOC#{node.location_id}",
                          gsi1sk=f"NODE#{node.id}", gsi2pk="TYPE#node", gsi2sk=node.id)

    def put_node(self, node: Node) -> None:
        self._save(self._node_item(node))

    def get_node(self, node_id: str) -> Node:
        return self._get(Node, f"NODE#{node_id}", "META")

    def list_nodes(self, location_id: str | None = None) -> list[Node]:
        if location_id is None:
            items: Iterable[_Item] = _Item.gsi2.query("TYPE#node")
        else:
            items = _Item.gsi1.query(f"LOC#{location_id}", _Item.gsi1sk.startswith("NODE#"))
        return [self._record(Node, i) for i in items]

    def set_node_status(self, node_id: str, status: str, ts: float, runtime: str | None,
                        isolated: bool | None) -> None:
        for _ in range(5):
            node = self.get_node(node_id)
            if node.last_seen is not None and node.last_seen > ts:
                return  # an older status message must not overwrite a newer one
            node.status, node.last_seen = status, ts
            node.runtime = runtime if runtime is not None else node.runtime
            node.isolated = isolated if isolated is not None else node.isolated
            try:
                self.put_node(node)
                return
            except Conflict:
                continue
        raise Conflict(f"node {node_id} kept changing")

    def allocations(self, node_id: str) -> list[Allocation]:
        items = _Item.query(f"NODE#{node_id}", _Item.sk.startswith("ALLOC#"))
        return [self._record(Allocation, i) for i in items]

    # -- servers --------------------------------------------------------------------------

    @staticmethod
    def _alloc_key(ip: str, port: int) -> str:
        return f"ALLOC#{ip}#{port:05d}"

    def _server_item(self, server: Server) -> _Item:
        item = self._item("server", f"SERVER#{server.id}", "META", server,
                          gsi1pk=f"OWNER#{server.owner_id}", gsi1sk=f"SERVER#{server.id}",
                          gsi2pk=f"NODE#{server.node_id}", gsi2sk=f"SERVER#{server.id}")
        item.seq = server.state_seq
        return item

    def _audit_item(self, entry: AuditEntry) -> _Item:
        return self._item("audit", f"AUDIT#{entry.server_id or 'global'}", f"{entry.ts:017.6f}#{entry.id}",
                          entry)

    def create_server(self, server: Server, allocations: list[Allocation], audit: AuditEntry) -> None:
        try:
            with self._transact() as tx:
                tx.save(self._server_item(server), condition=_Item.pk.does_not_exist())
                for alloc in allocations:
                    key = self._alloc_key(alloc.ip, alloc.port)
                    tx.save(self._item("allocation", f"NODE#{alloc.node_id}", key, alloc,
                                       gsi1pk=f"SERVER#{alloc.server_id}", gsi1sk=key),
                            condition=_Item.pk.does_not_exist())
                tx.save(self._audit_item(audit))
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict("server id or a port is already taken") from None
            raise
        server.version = 1

    def get_server(self, server_id: str) -> Server:
        return self._get(Server, f"SERVER#{server_id}", "META")

    def update_server(self, server: Server) -> Server:
        item = self._server_item(server)
        self._save(item)
        server.version = int(item.version)
        return server

    def delete_server(self, server: Server, audit: AuditEntry) -> None:
        allocs = list(_Item.gsi1.query(f"SERVER#{server.id}", _Item.gsi1sk.startswith("ALLOC#")))
        subs = list(_Item.query(f"SERVER#{server.id}", _Item.sk.startswith("SUB#")))
        try:
            with self._transact() as tx:
                tx.delete(self._server_item(server))
                for item in allocs + subs:
                    tx.delete(item)
                tx.save(self._audit_item(audit))
        except (TransactWriteError, DeleteError) as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"server {server.id} changed") from None
            raise

    def list_servers_owned(self, user_id: str) -> list[Server]:
        return [self._record(Server, i) for i in _Item.gsi1.query(f"OWNER#{user_id}")]

    def list_servers_shared(self, user_id: str) -> list[Server]:
        out = []
        for sub in _Item.gsi1.query(f"MEMBER#{user_id}"):
            try:
                out.append(self.get_server(sub.pk.removeprefix("SERVER#")))
            except NotFound:
                continue
        return out

    def list_servers_on_node(self, node_id: str) -> list[Server]:
        return [self._record(Server, i) for i in _Item.gsi2.query(f"NODE#{node_id}")]

    def apply_state(self, server_id: str, state: str, seq: int, detail: str | None) -> bool:
        """Record a state from the agent unless a newer one (higher seq) is already stored."""
        for _ in range(5):
            try:
                server = self.get_server(server_id)
            except NotFound:
                return False
            if seq <= server.state_seq:
                return False
            server.status, server.state_seq, server.status_detail = state, seq, detail  # type: ignore[assignment]
            try:
                self.update_server(server)
                return True
            except Conflict:
                continue
        raise Conflict(f"server {server_id} kept changing")

    def get_subuser(self, server_id: str, user_id: str) -> Subuser:
        return self._get(Subuser, f"SERVER#{server_id}", f"SUB#{user_id}")

    def put_subuser(self, subuser: Subuser) -> None:
        self._save(self._item("subuser", f"SERVER#{subuser.server_id}", f"SUB#{subuser.user_id}", subuser,
                              gsi1pk=f"MEMBER#{subuser.user_id}", gsi1sk=f"SERVER#{subuser.server_id}"))

    # -- broker grants ----------------------------------------------------------------------

    def put_grant(self, grant: Grant) -> None:
        item = self._item("grant", f"GRANT#{grant.username}", "META", grant,
                          gsi1pk="GRANTS", gsi1sk=f"{grant.expires_at:017.6f}")
        # Kept an hour past expiry so the sweeper, not DynamoDB's lazy TTL, revokes it first.
        item.expires = datetime.fromtimestamp(grant.expires_at + 3600, tz=UTC)
        self._save(item, condition=_Item.pk.does_not_exist())

    def expired_grants(self, now: float) -> list[Grant]:
        items = _Item.gsi1.query("GRANTS", _Item.gsi1sk < f"{now:017.6f}")
        return [self._record(Grant, i) for i in items]

    def delete_grant(self, username: str) -> None:
        _Item(f"GRANT#{username}", "META").delete(add_version_condition=False)

    # -- audit ----------------------------------------------------------------------------

    def add_audit(self, entry: AuditEntry) -> None:
        self._save(self._audit_item(entry))

    def list_audit(self, server_id: str, limit: int = 50) -> list[AuditEntry]:
        items = _Item.query(f"AUDIT#{server_id}", scan_index_forward=False, limit=limit)
        return [self._record(AuditEntry, i) for i in items]
