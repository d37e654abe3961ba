"""DynamoDB backend: one table, two GSIs, PynamoDB models.

Key design (the table and its indexes are declared in template.yaml, which a test keeps in
step with ``KEY_SCHEMA`` below):

| record      | pk                 | sk                   | gsi1 pk / sk               | gsi2 pk / sk           |
|-------------|--------------------|----------------------|----------------------------|------------------------|
| user        | USER#id            | PROFILE              |                            |                        |
| email claim | EMAIL#email        | UNIQUE               |                            |                        |
| location    | LOC#id             | META                 | TYPE#location / name#id    |                        |
| node        | NODE#id            | META                 | LOC#loc / NODE#id          | TYPE#node / id         |
| allocation  | NODE#id            | ALLOC#ip#port        | SERVER#sid / ALLOC#ip#port |                        |
| server      | SERVER#sid         | META                 | OWNER#uid / SERVER#sid     | NODE#nid / SERVER#sid  |
| subuser     | SERVER#sid         | SUB#uid              | MEMBER#uid / SERVER#sid    |                        |
| grant       | GRANT#username     | META                 | GRANTS / expiry            | VIEWERS#sid / uid#username |
| audit       | AUDIT#sid          | ts#id                |                            | AUDITLOG / ts#id       |
| idempotency | IDEM#uid#key       | META                 |                            |                        |
| rate count  | RATE#bucket#window | META                 |                            |                        |
| blueprint v | BP#id              | V#number (8 digits)  |                            |                        |
| bp latest   | BP#id              | HEAD (seq = number)  | TYPE#blueprint / id        |                        |
| schedule    | SERVER#sid         | SCHED#id             | DUE#shard / next_run#sid#id (sparse: enabled, due) |  |
| backup      | SERVER#sid         | BACKUP#id            |                            |                        |
| backup count| SERVER#sid         | BACKUPS (seq = count)|                            |                        |
| API key     | APIKEY#prefix      | META (seq = last use)| KEYS#uid / prefix          |                        |

Every request-path read is a GetItem or a Query on a key or index: no scans. Items with an
``expires`` (TTL) in the past are treated as absent on every read and may be overwritten by a
conditional create, because DynamoDB deletes expired items only eventually (up to days late).
Tenancy is checked by the service layer here (see ``base``): the actor is carried and logged,
and an admin person reading someone else's server leaves an ``admin.access`` audit entry on it
(PostgreSQL records every bypass in its own table instead).

Blueprint versions are immutable: a version item is only ever created (condition: absent), in
one transaction with the HEAD item, whose ``seq`` must be below the new number. A schedule is
in the sparse due index only while enabled with a ``next_run``; the index is spread over
``DUE_SHARDS`` partitions so one hot key never carries every schedule. A run is claimed by a
compare-and-set on the schedule that also moves ``next_run``: of two tickers, one wins. The
backup count lives on a counter item updated in the same transaction as the backup, with the
limit as its condition. An API key is found by its public prefix (the key) and its secret's
hash compared in constant time; ``last_used`` is a plain attribute so touching it does not
bump the version a concurrent revocation compares against.
"""

from __future__ import annotations

import copy
import hmac
import itertools
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from . import paging
from .base import NOBODY, Actor, Conflict, LimitReached, NotFound
from .paging import Page, audit_key
from .records import (
    Allocation,
    ApiKey,
    AuditEntry,
    Backup,
    BlueprintVersion,
    Grant,
    Idempotency,
    Location,
    Node,
    Record,
    Schedule,
    Server,
    Subuser,
    User,
)

R = TypeVar("R", bound=Record)
log = logging.getLogger("stellar.store")

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
        # A concurrent transaction on the same item is a lost race too: one Conflict either way.
        return any(r is not None and r.code in {"ConditionalCheckFailed", "TransactionConflict"} for r in reasons)
    return False


def _expired(item: _Item, now: float | None = None) -> bool:
    return item.expires is not None and item.expires.timestamp() <= (time.time() if now is None else now)


def _ttl(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _s(**attrs: str) -> dict[str, dict[str, str]]:
    """An ExclusiveStartKey in DynamoDB's wire format."""
    return {k: {"S": v} for k, v in attrs.items()}


class DynamoStore:
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        _Item.Meta.table_name = table_name
        _Item.Meta.region = region
        _Item.Meta.host = host  # None: the default endpoint, or AWS_ENDPOINT_URL (moto) when set
        _Item._connection = None  # rebind to the new table name
        self._region = region
        self._shared: dict[str, Connection] = {}  # shared by every scoped copy (copy.copy)
        self.actor: Actor = NOBODY
        self._audited: set[str] = set()  # servers this admin scope already left an access entry on

    # -- acting user ----------------------------------------------------------------------

    def as_user(self, user_id: str) -> DynamoStore:
        scoped = copy.copy(self)
        scoped.actor = Actor(user_id=user_id)
        return scoped

    def as_admin(self, reason: str, user_id: str | None = None) -> DynamoStore:
        if not reason.strip():
            raise ValueError("an admin bypass needs a reason")
        log.info("admin bypass: %s", reason)
        scoped = copy.copy(self)
        scoped.actor = Actor(user_id=user_id, admin_reason=reason)
        scoped._audited = set()
        return scoped

    def close(self) -> None:
        pass

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
            item = _Item.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"{pk}/{sk}") from None
        if _expired(item):
            raise NotFound(f"{pk}/{sk} expired")
        return self._record(model, item)

    def _save(self, item: _Item, condition: Any = None, record: Record | None = None, **kw: Any) -> None:
        try:
            item.save(condition=condition, **kw)
        except PutError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"{item.pk}/{item.sk} changed or exists") from None
            raise
        if record is not None:
            record.version = int(item.version)

    def _create_expiring(self, item: _Item, record: Record) -> None:
        """Conditional create that an expired (not yet deleted) item does not block."""
        absent_or_dead = _Item.pk.does_not_exist() | (_Item.expires < _ttl(time.time()))
        self._save(item, condition=absent_or_dead, record=record, add_version_condition=False)

    def _transact(self) -> TransactWrite:
        conn = self._shared.get("tx")
        if conn is None:  # one client for every transaction and scope: creating one costs ~100 ms
            conn = self._shared["tx"] = Connection(region=self._region, host=_Item.Meta.host)
        return TransactWrite(connection=conn)

    @staticmethod
    def _page(model: type[R], tag: str, query: Callable[[int, dict[str, Any] | None], Iterable[_Item]],
              limit: int | None, cursor: str | None, start_key: Callable[[str], dict[str, Any]],
              key_of: Callable[[_Item], str], load: Callable[[_Item], R] | None = None) -> Page[R]:
        """One page of a key/index query: fetch ``limit + 1`` to learn whether more follow."""
        after = paging.decode(tag, cursor)
        # page_size, not limit: the query reads on lazily, so expired items skipped here cannot end a
        # page early (which would drop the cursor while live items remain).
        live = (i for i in query(limit + 1 if limit else 0, start_key(after) if after else None) if not _expired(i))
        items = list(itertools.islice(live, limit + 1) if limit else live)
        page = paging.cut(tag, items, limit, key_of)
        return Page([load(i) if load else DynamoStore._record(model, i) for i in page], page.cursor)

    def ping(self) -> bool:
        return bool(_Item.exists())

    # -- users ----------------------------------------------------------------------------

    def put_user(self, user: User) -> None:
        """Create (version 0) or update a profile; the email is claimed by a second item, atomically."""
        email = user.email.lower()
        item = self._item("user", f"USER#{user.id}", "PROFILE", user)
        claim = _Item(f"EMAIL#{email}", "UNIQUE", kind="email", data=json.dumps({"user_id": user.id}))
        old_email = None
        if user.version:
            current = self.get_user(user.id)
            if current.version != user.version:
                raise Conflict(f"user {user.id} changed")
            old_email = current.email.lower()
        try:
            with self._transact() as tx:
                if not user.version:
                    tx.save(item, condition=_Item.pk.does_not_exist())
                else:
                    tx.save(item)
                if old_email != email:
                    tx.save(claim, condition=_Item.pk.does_not_exist())
                    if old_email is not None:
                        tx.delete(_Item(f"EMAIL#{old_email}", "UNIQUE"), add_version_condition=False)
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict("the user exists, changed, or the email is taken") from None
            raise
        user.version = (user.version or 0) + 1

    def get_user(self, user_id: str) -> User:
        return self._get(User, f"USER#{user_id}", "PROFILE")

    def user_id_by_email(self, email: str) -> str:
        """The id of the account with this email (the uniqueness claim names it); NotFound if none."""
        try:
            item = _Item.get(f"EMAIL#{email.strip().lower()}", "UNIQUE", consistent_read=True)
        except DoesNotExist:
            raise NotFound("no account with this email") from None
        return str(json.loads(item.data)["user_id"])

    def delete_user(self, user_id: str) -> None:
        """The profile and its email claim together; absent already is fine (idempotent)."""
        try:
            user = self.get_user(user_id)
        except NotFound:
            return
        with self._transact() as tx:
            tx.delete(_Item(f"USER#{user_id}", "PROFILE"), add_version_condition=False)
            tx.delete(_Item(f"EMAIL#{user.email.lower()}", "UNIQUE"), add_version_condition=False)

    # -- locations and nodes -------------------------------------------------------------

    def create_location(self, location: Location) -> None:
        item = self._item("location", f"LOC#{location.id}", "META", location,
                          gsi1pk="TYPE#location", gsi1sk=f"{location.name}#{location.id}")
        self._save(item, condition=_Item.pk.does_not_exist(), record=location)

    def list_locations(self) -> list[Location]:
        return [self._record(Location, i) for i in _Item.gsi1.query("TYPE#location")]

    def get_location(self, location_id: str) -> Location:
        return self._get(Location, f"LOC#{location_id}", "META")

    def update_location(self, location: Location) -> None:
        if not location.version:
            raise Conflict("update_location needs a stored version (use create_location)")
        item = self._item("location", f"LOC#{location.id}", "META", location,
                          gsi1pk="TYPE#location", gsi1sk=f"{location.name}#{location.id}")
        self._save(item, record=location)

    def delete_location(self, location_id: str) -> None:
        """Refused (Conflict) while any node is in it."""
        if self.list_nodes(location_id):
            raise Conflict(f"location {location_id} still has nodes")
        self.get_location(location_id)
        _Item(f"LOC#{location_id}", "META").delete(add_version_condition=False)

    def _node_item(self, node: Node) -> _Item:
        return self._item("node", f"NODE#{node.id}", "META", node, gsi1pk=f"LOC#{node.location_id}",
                          gsi1sk=f"NODE#{node.id}", gsi2pk="TYPE#node", gsi2sk=node.id)

    def put_node(self, node: Node) -> None:
        self._save(self._node_item(node), record=node)

    def get_node(self, node_id: str) -> Node:
        return self._get(Node, f"NODE#{node_id}", "META")

    def list_nodes(self, location_id: str | None = None) -> list[Node]:
        if location_id is None:
            items: Iterable[_Item] = _Item.gsi2.query("TYPE#node")
        else:
            items = _Item.gsi1.query(f"LOC#{location_id}", _Item.gsi1sk.startswith("NODE#"))
        return [self._record(Node, i) for i in items]

    def delete_node(self, node: Node) -> None:
        """Refused (Conflict) while servers are on it or the node changed since it was read.

        DynamoDB cannot condition on an index being empty: the check reads the node index
        first, and placement re-reads the node (version) before reserving ports on it."""
        if self.list_servers_on_node(node.id, limit=1):
            raise Conflict(f"node {node.id} still has servers")
        try:
            _Item(f"NODE#{node.id}", "META", version=node.version).delete()
        except DeleteError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"node {node.id} changed") from None
            raise

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
        items = _Item.query(f"NODE#{node_id}", _Item.sk.startswith("ALLOC#"), consistent_read=True)
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
        """Per server (``AUDIT#sid``) and, through gsi2, one newest-first log of everything for admins."""
        entry.stamp_origin()
        return self._item("audit", f"AUDIT#{entry.server_id or 'global'}", audit_key(entry), entry,
                          gsi2pk="AUDITLOG", gsi2sk=audit_key(entry))

    def create_server(self, server: Server, allocations: list[Allocation], audit: AuditEntry) -> None:
        try:
            with self._transact() as tx:
                tx.save(self._server_item(server), condition=_Item.pk.does_not_exist())
                for alloc in allocations:
                    key = self._alloc_key(alloc.ip, alloc.port)
                    tx.save(self._item("allocation", f"NODE#{alloc.node_id}", key, alloc,
                                       gsi1pk=f"SERVER#{alloc.server_id}", gsi1sk=key),
                            condition=_Item.pk.does_not_exist())
                tx.save(self._audit_item(audit), condition=_Item.pk.does_not_exist())
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict("server id or a port is already taken") from None
            raise
        server.version = 1
        for alloc in allocations:
            alloc.version = 1

    def change_allocations(self, server: Server, add: list[Allocation], remove: list[Allocation],
                           audit: AuditEntry) -> None:
        """The server (compare-and-set on its version), ports claimed (condition: absent, so a port
        is never given twice) or freed (only if this server holds them) and the audit entry, at once."""
        try:
            with self._transact() as tx:
                tx.save(self._server_item(server))
                for alloc in add:
                    key = self._alloc_key(alloc.ip, alloc.port)
                    tx.save(self._item("allocation", f"NODE#{alloc.node_id}", key, alloc,
                                       gsi1pk=f"SERVER#{alloc.server_id}", gsi1sk=key),
                            condition=_Item.pk.does_not_exist())
                for alloc in remove:
                    tx.delete(_Item(f"NODE#{alloc.node_id}", self._alloc_key(alloc.ip, alloc.port)),
                              condition=_Item.gsi1pk == f"SERVER#{server.id}", add_version_condition=False)
                tx.save(self._audit_item(audit), condition=_Item.pk.does_not_exist())
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict("the server changed, or a port is taken or no longer this server's") from None
            raise
        server.version += 1
        for alloc in add:
            alloc.version = 1

    def get_server(self, server_id: str) -> Server:
        server = self._get(Server, f"SERVER#{server_id}", "META")
        actor = self.actor
        if actor.is_admin and actor.user_id and server.owner_id != actor.user_id and server_id not in self._audited:
            # No database records bypasses here, so an admin person's access is audited on the server.
            self.add_audit(AuditEntry(actor_id=actor.user_id, action="admin.access", server_id=server_id,
                                      details={"reason": actor.admin_reason or "", "owner": server.owner_id}))
            self._audited.add(server_id)
        return server

    def update_server(self, server: Server) -> Server:
        if not server.version:
            raise Conflict("update_server needs a stored version (use create_server)")
        self._save(self._server_item(server), record=server)
        return server

    def delete_server(self, server: Server, audit: AuditEntry) -> None:
        allocs = list(_Item.gsi1.query(f"SERVER#{server.id}", _Item.gsi1sk.startswith("ALLOC#")))
        # Subusers, schedules, backups and the backup counter go with the server (as by cascade in SQL).
        children = [i for i in _Item.query(f"SERVER#{server.id}", consistent_read=True) if i.sk != "META"]
        try:
            with self._transact() as tx:
                tx.delete(self._server_item(server))
                for item in allocs + children:
                    tx.delete(item)
                tx.save(self._audit_item(audit))
        except (TransactWriteError, DeleteError) as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"server {server.id} changed") from None
            raise

    def list_servers_owned(self, user_id: str, limit: int | None = None,
                           cursor: str | None = None) -> Page[Server]:
        return self._page(
            Server, paging.query_tag("owned", user_id),
            lambda n, start: _Item.gsi1.query(f"OWNER#{user_id}", page_size=n or None, last_evaluated_key=start),
            limit, cursor,
            lambda sid: _s(pk=f"SERVER#{sid}", sk="META", gsi1pk=f"OWNER#{user_id}", gsi1sk=f"SERVER#{sid}"),
            lambda i: i.pk.removeprefix("SERVER#"))

    def list_servers_shared(self, user_id: str, limit: int | None = None,
                            cursor: str | None = None) -> Page[Server]:
        tag = paging.query_tag("shared", user_id)
        after = paging.decode(tag, cursor)
        start = _s(pk=f"SERVER#{after}", sk=f"SUB#{user_id}", gsi1pk=f"MEMBER#{user_id}",
                   gsi1sk=f"SERVER#{after}") if after else None
        subs = list(_Item.gsi1.query(f"MEMBER#{user_id}", limit=(limit + 1) if limit else None,
                                     last_evaluated_key=start))
        page = paging.cut(tag, [s.pk.removeprefix("SERVER#") for s in subs], limit, lambda sid: sid)
        found = {i.pk: i for i in _Item.batch_get([(f"SERVER#{sid}", "META") for sid in page],
                                                  consistent_read=True)} if page else {}
        servers = [self._record(Server, found[f"SERVER#{sid}"]) for sid in page if f"SERVER#{sid}" in found]
        return Page(servers, page.cursor)

    def list_servers_on_node(self, node_id: str, limit: int | None = None,
                             cursor: str | None = None) -> Page[Server]:
        return self._page(
            Server, paging.query_tag("node", node_id),
            lambda n, start: _Item.gsi2.query(f"NODE#{node_id}", page_size=n or None, last_evaluated_key=start),
            limit, cursor,
            lambda sid: _s(pk=f"SERVER#{sid}", sk="META", gsi2pk=f"NODE#{node_id}", gsi2sk=f"SERVER#{sid}"),
            lambda i: i.pk.removeprefix("SERVER#"))

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
        """Create (version 0: a Conflict if present) or compare-and-set update."""
        condition = _Item.pk.does_not_exist() if not subuser.version else None
        self._save(self._item("subuser", f"SERVER#{subuser.server_id}", f"SUB#{subuser.user_id}", subuser,
                              gsi1pk=f"MEMBER#{subuser.user_id}", gsi1sk=f"SERVER#{subuser.server_id}"),
                   condition=condition, record=subuser)

    def list_subusers(self, server_id: str) -> list[Subuser]:
        items = _Item.query(f"SERVER#{server_id}", _Item.sk.startswith("SUB#"), consistent_read=True)
        return [self._record(Subuser, i) for i in items]

    def delete_subuser(self, server_id: str, user_id: str) -> None:
        try:
            _Item(f"SERVER#{server_id}", f"SUB#{user_id}").delete(condition=_Item.pk.exists(),
                                                                   add_version_condition=False)
        except DeleteError as exc:
            if _is_condition_failure(exc):
                raise NotFound(f"subuser {user_id} of {server_id}") from None
            raise

    # -- broker grants ----------------------------------------------------------------------

    def put_grant(self, grant: Grant) -> None:
        item = self._item("grant", f"GRANT#{grant.username}", "META", grant,
                          gsi1pk="GRANTS", gsi1sk=f"{grant.expires_at:017.6f}",
                          gsi2pk=f"VIEWERS#{grant.server_id}", gsi2sk=f"{grant.user_id}#{grant.username}")
        # Kept an hour past expiry so the sweeper, not DynamoDB's lazy TTL, revokes it first.
        item.expires = _ttl(grant.expires_at + GRANT_GRACE_S)
        self._create_expiring(item, grant)

    def get_grant(self, username: str) -> Grant:
        return self._get(Grant, f"GRANT#{username}", "META")

    def expired_grants(self, now: float) -> list[Grant]:
        items = _Item.gsi1.query("GRANTS", _Item.gsi1sk < f"{now:017.6f}")
        return [self._record(Grant, i) for i in items]

    def delete_grant(self, username: str) -> None:
        _Item(f"GRANT#{username}", "META").delete(add_version_condition=False)

    def list_grants(self, server_id: str, user_id: str | None = None) -> list[Grant]:
        """Every stored grant on a server (of one user), live or expired: what revocation must reach."""
        cond = _Item.gsi2sk.startswith(f"{user_id}#") if user_id is not None else None
        return [self._record(Grant, i) for i in _Item.gsi2.query(f"VIEWERS#{server_id}", cond)]

    # -- audit ----------------------------------------------------------------------------

    def add_audit(self, entry: AuditEntry) -> None:
        self._save(self._audit_item(entry), condition=_Item.pk.does_not_exist(), record=entry)

    def list_audit(self, server_id: str, limit: int | None = 50,
                   cursor: str | None = None) -> Page[AuditEntry]:
        """Newest first."""
        return self._page(
            AuditEntry, paging.query_tag("audit", server_id),
            lambda n, start: _Item.query(f"AUDIT#{server_id}", scan_index_forward=False, page_size=n or None,
                                         last_evaluated_key=start),
            limit, cursor, lambda sk: _s(pk=f"AUDIT#{server_id}", sk=sk), lambda i: i.sk)

    def list_audit_all(self, limit: int | None = 50, cursor: str | None = None) -> Page[AuditEntry]:
        """Every server's and every account's entries, newest first (admins; the gsi2 log)."""
        if not self.actor.is_admin:
            return Page([], None)  # as under RLS: the whole log is for the admin bypass only
        return self._page(
            AuditEntry, paging.query_tag("audit-all"),
            lambda n, start: _Item.gsi2.query("AUDITLOG", scan_index_forward=False, page_size=n or None,
                                              last_evaluated_key=start),
            limit, cursor,
            lambda key: self._audit_start(key), lambda i: i.gsi2sk or "")

    @staticmethod
    def _audit_start(key: str) -> dict[str, Any]:
        """The gsi2 start key of an audit entry: its table key holds its server, read from the entry."""
        items = list(_Item.gsi2.query("AUDITLOG", _Item.gsi2sk == key, limit=1))
        pk = items[0].pk if items else "AUDIT#global"
        return _s(pk=pk, sk=key, gsi2pk="AUDITLOG", gsi2sk=key)

    # -- idempotency and rate limits ------------------------------------------------------------

    def claim_idempotency(self, record: Idempotency) -> None:
        item = self._item("idempotency", f"IDEM#{record.user_id}#{record.key}", "META", record)
        item.expires = _ttl(record.expires_at)
        self._create_expiring(item, record)

    def get_idempotency(self, user_id: str, key: str) -> Idempotency:
        return self._get(Idempotency, f"IDEM#{user_id}#{key}", "META")

    def finish_idempotency(self, record: Idempotency) -> Idempotency:
        item = self._item("idempotency", f"IDEM#{record.user_id}#{record.key}", "META", record)
        item.expires = _ttl(record.expires_at)
        self._save(item, condition=_Item.expires > _ttl(time.time()), record=record)
        return record

    def count_hit(self, bucket: str, window_s: int, now: float | None = None) -> int:
        """Fixed-window counter: one atomic ADD; the window is part of the key, so old ones are never read."""
        now = time.time() if now is None else now
        window = int(now // window_s) * window_s
        item = _Item(f"RATE#{bucket}#{window}", "META")
        item.update(actions=[_Item.seq.add(1), _Item.kind.set("rate"), _Item.data.set("{}"),
                             _Item.expires.set(_ttl(window + 2 * window_s))], add_version_condition=False)
        return int(item.seq or 0)

    def peek_hits(self, bucket: str, window_s: int, now: float | None = None) -> int:
        """The current window's count without adding to it (0 when nothing was counted)."""
        now = time.time() if now is None else now
        window = int(now // window_s) * window_s
        try:
            item = _Item.get(f"RATE#{bucket}#{window}", "META", consistent_read=True)
        except DoesNotExist:
            return 0
        return int(item.seq or 0)

    # -- blueprints -------------------------------------------------------------------------

    def create_blueprint_version(self, version: BlueprintVersion) -> BlueprintVersion:
        """Add a version (number 0: latest + 1); an existing or older number is a Conflict."""
        if not self.actor.is_admin:
            raise NotFound("blueprints are written only through the admin bypass")
        if not version.number:
            try:
                version.number = self.get_blueprint_version(version.blueprint_id).number + 1
            except NotFound:
                version.number = 1
        version.version = 0
        item = self._item("blueprint", f"BP#{version.blueprint_id}", f"V#{version.number:08d}", version)
        head = _Item(f"BP#{version.blueprint_id}", "HEAD")
        try:
            with self._transact() as tx:
                tx.save(item, condition=_Item.pk.does_not_exist())
                tx.update(head, [_Item.kind.set("blueprint"), _Item.data.set(item.data), _Item.seq.set(version.number),
                                 _Item.gsi1pk.set("TYPE#blueprint"), _Item.gsi1sk.set(version.blueprint_id)],
                          condition=_Item.seq.does_not_exist() | (_Item.seq < version.number),
                          add_version_condition=False)
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"blueprint {version.blueprint_id} v{version.number} exists or is not newest") from None
            raise
        version.version = 1
        return version

    def get_blueprint_version(self, blueprint_id: str, number: int | None = None) -> BlueprintVersion:
        """Version ``number``, or the latest when None."""
        record = self._get(BlueprintVersion, f"BP#{blueprint_id}", "HEAD" if number is None else f"V#{number:08d}")
        record.version = 1  # versions are immutable: the HEAD item's own version is bookkeeping
        return record

    def list_blueprints(self, limit: int | None = None, cursor: str | None = None) -> Page[BlueprintVersion]:
        """The latest version of every blueprint, by id."""
        page = self._page(
            BlueprintVersion, paging.query_tag("blueprints"),
            lambda n, start: _Item.gsi1.query("TYPE#blueprint", page_size=n or None, last_evaluated_key=start),
            limit, cursor,
            lambda bid: _s(pk=f"BP#{bid}", sk="HEAD", gsi1pk="TYPE#blueprint", gsi1sk=bid),
            lambda i: i.gsi1sk or "")
        for record in page:
            record.version = 1
        return page

    def list_blueprint_versions(self, blueprint_id: str) -> list[BlueprintVersion]:
        items = _Item.query(f"BP#{blueprint_id}", _Item.sk.startswith("V#"), consistent_read=True)
        return [self._record(BlueprintVersion, i) for i in items]

    # -- schedules ------------------------------------------------------------------------

    @staticmethod
    def _due_shard(server_id: str) -> str:
        return f"DUE#{zlib.crc32(server_id.encode()) % DUE_SHARDS}"

    def _schedule_item(self, schedule: Schedule) -> _Item:
        keys: dict[str, str] = {}
        if schedule.enabled and schedule.next_run is not None:  # sparse: only what can come due
            keys = {"gsi1pk": self._due_shard(schedule.server_id),
                    "gsi1sk": f"{schedule.next_run:017.6f}#{schedule.server_id}#{schedule.id}"}
        return self._item("schedule", f"SERVER#{schedule.server_id}", f"SCHED#{schedule.id}", schedule, **keys)

    def put_schedule(self, schedule: Schedule) -> None:
        """Create (version 0) or compare-and-set update."""
        condition = _Item.pk.does_not_exist() if not schedule.version else None
        self._save(self._schedule_item(schedule), condition=condition, record=schedule)

    def get_schedule(self, server_id: str, schedule_id: str) -> Schedule:
        return self._get(Schedule, f"SERVER#{server_id}", f"SCHED#{schedule_id}")

    def list_schedules(self, server_id: str) -> list[Schedule]:
        items = _Item.query(f"SERVER#{server_id}", _Item.sk.startswith("SCHED#"), consistent_read=True)
        return [self._record(Schedule, i) for i in items]

    def delete_schedule(self, schedule: Schedule) -> None:
        try:
            _Item(f"SERVER#{schedule.server_id}", f"SCHED#{schedule.id}", version=schedule.version).delete()
        except DeleteError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"schedule {schedule.id} changed") from None
            raise

    def due_schedules(self, now: float, limit: int = 100) -> list[Schedule]:
        """Enabled schedules whose ``next_run`` is at or before ``now``, earliest first (index only)."""
        bound = f"{now:017.6f}$"  # '$' sorts after the '#' that follows the timestamp
        items: list[_Item] = []
        for shard in range(DUE_SHARDS):
            items += _Item.gsi1.query(f"DUE#{shard}", _Item.gsi1sk < bound, limit=limit)
        items.sort(key=lambda i: i.gsi1sk or "")
        return [self._record(Schedule, i) for i in items[:limit]]

    def claim_schedule_run(self, schedule: Schedule, next_run: float | None, now: float) -> bool:
        """Claim the run at ``schedule.next_run`` and move on to ``next_run``; False if someone else did."""
        for _ in range(5):
            try:
                fresh = self.get_schedule(schedule.server_id, schedule.id)
            except NotFound:
                return False
            if not fresh.enabled or fresh.next_run is None or fresh.next_run != schedule.next_run:
                return False  # claimed already (next_run moved), disabled, or rescheduled
            fresh.last_run, fresh.next_run = now, next_run
            try:
                self.put_schedule(fresh)
            except Conflict:
                continue  # changed under us (an edit, or the other ticker): look again
            schedule.last_run, schedule.next_run, schedule.version = now, next_run, fresh.version
            return True
        raise Conflict(f"schedule {schedule.id} kept changing")

    # -- backups --------------------------------------------------------------------------

    def _backup_item(self, backup: Backup) -> _Item:
        return self._item("backup", f"SERVER#{backup.server_id}", f"BACKUP#{backup.id}", backup)

    def create_backup(self, backup: Backup, limit: int) -> None:
        """Create the backup and count it in one transaction; the count's condition is the limit."""
        counter = _Item(f"SERVER#{backup.server_id}", "BACKUPS")
        try:
            with self._transact() as tx:
                tx.save(self._backup_item(backup), condition=_Item.pk.does_not_exist())
                tx.update(counter, [_Item.seq.add(1), _Item.kind.set("counter"), _Item.data.set("{}")],
                          condition=_Item.seq.does_not_exist() | (_Item.seq < limit), add_version_condition=False)
        except TransactWriteError as exc:
            reasons = getattr(exc, "cancellation_reasons", None) or []
            if len(reasons) == 2 and reasons[1] is not None and reasons[1].code == "ConditionalCheckFailed":
                raise LimitReached(f"server {backup.server_id} has {limit} backups already") from None
            if _is_condition_failure(exc):
                raise Conflict(f"backup {backup.id} exists or the count changed") from None
            raise
        backup.version = 1

    def get_backup(self, server_id: str, backup_id: str) -> Backup:
        return self._get(Backup, f"SERVER#{server_id}", f"BACKUP#{backup_id}")

    def update_backup(self, backup: Backup) -> Backup:
        if not backup.version:
            raise Conflict("update_backup needs a stored version (use create_backup)")
        self._save(self._backup_item(backup), record=backup)
        return backup

    def delete_backup(self, server_id: str, backup_id: str) -> None:
        """Refused (Conflict) while locked; the delete is conditioned on the unlocked version read."""
        backup = self.get_backup(server_id, backup_id)
        if backup.locked:
            raise Conflict(f"backup {backup_id} is locked")
        counter = _Item(f"SERVER#{server_id}", "BACKUPS")
        try:
            with self._transact() as tx:
                tx.delete(self._backup_item(backup))
                tx.update(counter, [_Item.seq.add(-1)], condition=_Item.seq > 0, add_version_condition=False)
        except TransactWriteError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"backup {backup_id} changed") from None
            raise

    def list_backups(self, server_id: str, limit: int | None = None, cursor: str | None = None) -> Page[Backup]:
        return self._page(
            Backup, paging.query_tag("backups", server_id),
            lambda n, start: _Item.query(f"SERVER#{server_id}", _Item.sk.startswith("BACKUP#"), consistent_read=True,
                                         page_size=n or None, last_evaluated_key=start),
            limit, cursor, lambda bid: _s(pk=f"SERVER#{server_id}", sk=f"BACKUP#{bid}"),
            lambda i: i.sk.removeprefix("BACKUP#"))

    def count_backups(self, server_id: str) -> int:
        try:
            item = _Item.get(f"SERVER#{server_id}", "BACKUPS", consistent_read=True)
        except DoesNotExist:
            return 0
        return int(item.seq or 0)

    # -- API keys --------------------------------------------------------------------------

    def _key_item(self, key: ApiKey) -> _Item:
        item = self._item("apikey", f"APIKEY#{key.prefix}", "META", key, gsi1pk=f"KEYS#{key.user_id}",
                          gsi1sk=key.prefix)
        item.seq = key.last_used_at
        if key.expires_at is not None:
            item.expires = _ttl(key.expires_at)
        return item

    def _key_record(self, item: _Item) -> ApiKey:
        key = self._record(ApiKey, item)
        key.last_used_at = float(item.seq) if item.seq is not None else None
        return key

    def create_api_key(self, key: ApiKey) -> None:
        if self.actor.user_id != key.user_id and not self.actor.is_admin:
            raise NotFound("an API key is created by its own user")
        self._save(self._key_item(key), condition=_Item.pk.does_not_exist(), record=key)

    def authenticate_api_key(self, prefix: str, key_hash: str, now: float | None = None) -> ApiKey:
        """The live key with this prefix whose secret hashes to ``key_hash``; NotFound otherwise."""
        now = time.time() if now is None else now
        try:
            item = _Item.get(f"APIKEY#{prefix}", "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound("no such API key") from None
        key = self._key_record(item)
        if not hmac.compare_digest(key.key_hash, key_hash) or key.revoked_at is not None or \
                (key.expires_at is not None and key.expires_at <= now):
            raise NotFound("no such API key")
        return key

    def list_api_keys(self, user_id: str, limit: int | None = None, cursor: str | None = None) -> Page[ApiKey]:
        if self.actor.user_id != user_id and not self.actor.is_admin:
            return Page([], None)  # keys are visible only to their user, as under RLS
        return self._page(
            ApiKey, paging.query_tag("apikeys", user_id),
            lambda n, start: _Item.gsi1.query(f"KEYS#{user_id}", page_size=n or None, last_evaluated_key=start),
            limit, cursor,
            lambda p: _s(pk=f"APIKEY#{p}", sk="META", gsi1pk=f"KEYS#{user_id}", gsi1sk=p),
            lambda i: i.gsi1sk or "", load=self._key_record)

    def _own_key(self, prefix: str) -> _Item:
        try:
            item = _Item.get(f"APIKEY#{prefix}", "META", consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"API key {prefix}") from None
        if _expired(item) or (not self.actor.is_admin and json.loads(item.data)["user_id"] != self.actor.user_id):
            raise NotFound(f"API key {prefix}")
        return item

    def revoke_api_key(self, prefix: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for _ in range(5):
            key = self._key_record(self._own_key(prefix))
            if key.revoked_at is not None:
                return
            key.revoked_at = now
            try:
                self._save(self._key_item(key), record=key)
                return
            except Conflict:
                continue
        raise Conflict(f"API key {prefix} kept changing")

    def touch_api_key(self, prefix: str, now: float | None = None) -> None:
        """Move ``last_used`` forward; a plain attribute update, so no version is bumped."""
        now = time.time() if now is None else now
        self._own_key(prefix)
        try:
            _Item._get_connection().update_item(
                f"APIKEY#{prefix}", "META", actions=[_Item.seq.set(now)],
                condition=_Item.pk.exists() & (_Item.seq.does_not_exist() | (_Item.seq < now)))
        except UpdateError as exc:
            if not _is_condition_failure(exc):
                raise

    # -- retention ----------------------------------------------------------------------------

    def prune_admin_bypass(self, older_than_days: int) -> int:
        """Nothing to prune: DynamoDB records admin access as ordinary audit entries."""
        if older_than_days < 1:
            raise ValueError("admin bypass retention must keep at least one day")
        return 0


GRANT_GRACE_S = 3600
DUE_SHARDS = 4
