"""PostgreSQL backend: psycopg 3, a connection pool, row-level security for tenancy.

Schema and policies live in ``migrations/`` (applied by ``migrate.py``). The application
connects as a non-owner role, so every query is filtered by the policies: each transaction
first names its actor (``stellar.user_id`` for a user, or ``stellar_admin_bypass(reason)``,
which records the bypass in the database). A store nobody scoped sees no tenant rows.

Semantics match the DynamoDB backend: version 0 means "create" (a duplicate key is a
``Conflict``), any other version is a compare-and-set (a stale version is a ``Conflict``);
lists are ordered by the same keys and paged with the same cursors; expired rows are
invisible on read even before anything deletes them.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

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
GRANT_GRACE_S = 3600  # as in DynamoDB: the sweeper gets an hour before the row counts as gone


def _dump(record: Record) -> Jsonb:
    return Jsonb(record.model_dump(mode="json", exclude={"version"}))


def _load(model: type[R], row: tuple[Any, ...]) -> R:
    """Rows are selected as (version, data, ...)."""
    record = model.model_validate(row[1])
    record.version = int(row[0])
    return record


class PostgresStore:
    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10,
                 pool: ConnectionPool | None = None) -> None:
        self._pool = pool or ConnectionPool(dsn, min_size=min_size, max_size=max_size, open=True,
                                            name="stellar-store", timeout=10)
        self.actor: Actor = NOBODY

    # -- acting user ----------------------------------------------------------------------

    def as_user(self, user_id: str) -> PostgresStore:
        scoped = copy.copy(self)
        scoped.actor = Actor(user_id=user_id)
        return scoped

    def as_admin(self, reason: str, user_id: str | None = None) -> PostgresStore:
        if not reason.strip():
            raise ValueError("an admin bypass needs a reason")
        scoped = copy.copy(self)
        scoped.actor = Actor(user_id=user_id, admin_reason=reason)  # the bypass row names the reason
        return scoped

    def close(self) -> None:
        self._pool.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction, scoped to the actor; database errors become store errors."""
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                if self.actor.admin_reason is not None:
                    cur.execute("select stellar_admin_bypass(%s)", [self.actor.admin_reason])
                elif self.actor.user_id is not None:
                    cur.execute("select set_config('stellar.user_id', %s, true)", [self.actor.user_id])
                yield cur
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"already exists: {exc.diag.constraint_name}") from None
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
            raise Conflict(f"concurrent change: {exc.sqlstate}") from None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound("the record this refers to does not exist") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            # A row-level security check refused a write: no access reads as "not found".
            raise NotFound(f"not visible to {self.actor}: {exc.diag.message_primary}") from None

    def _one(self, model: type[R], query: str, params: list[Any]) -> R:
        with self._tx() as cur:
            row = cur.execute(query, params).fetchone()  # type: ignore[arg-type]
        if row is None:
            raise NotFound(f"{model.__name__} {params}")
        return _load(model, row)

    def _put(self, cur: psycopg.Cursor[Any], table: str, key: dict[str, Any], cols: dict[str, Any],
             record: Record) -> None:
        """Create when ``record.version`` is 0, else compare-and-set on the version."""
        if not record.version:
            names = [*key, *cols, "version", "data"]
            cur.execute(sql.SQL("insert into {} ({}) values ({})").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names))),
                [*key.values(), *cols.values(), 1, _dump(record)])
            record.version = 1
            return
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in [*cols, "data"])
        where = sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key)
        cur.execute(sql.SQL("update {} set {}, version = version + 1 where {} and version = %s").format(
            sql.Identifier(table), sets, where), [*cols.values(), _dump(record), *key.values(), record.version])
        if cur.rowcount != 1:
            raise Conflict(f"{table} {list(key.values())} changed or is missing")
        record.version += 1

    def _page(self, model: type[R], tag: str, base: str, params: list[Any], sort: str, limit: int | None,
              cursor: str | None, desc: bool = False) -> Page[R]:
        """``base`` selects (version, data, sort key) up to its WHERE; keyset paging on ``sort``."""
        after = paging.decode(tag, cursor)
        query, args = base, list(params)
        if after is not None:
            query += f" and {sort} {'<' if desc else '>'} %s"
            args.append(after)
        query += f" order by {sort}{' desc' if desc else ''}"
        if limit:
            query += " limit %s"
            args.append(limit + 1)
        with self._tx() as cur:
            rows = cur.execute(query, args).fetchall()  # type: ignore[arg-type]  # fixed text, no user input
        page = paging.cut(tag, rows, limit, lambda r: str(r[2]))
        return Page([_load(model, r) for r in page], page.cursor)

    def ping(self) -> bool:
        with self._tx() as cur:
            return cur.execute("select 1").fetchone() == (1,)

    # -- users ----------------------------------------------------------------------------

    def put_user(self, user: User) -> None:
        with self._tx() as cur:
            self._put(cur, "users", {"id": user.id}, {"email": user.email.lower()}, user)

    def get_user(self, user_id: str) -> User:
        return self._one(User, "select version, data from users where id = %s", [user_id])

    def user_id_by_email(self, email: str) -> str:
        """Only the id (a security definer function): other users' profiles stay invisible."""
        with self._tx() as cur:
            row = cur.execute("select stellar_user_id_by_email(%s)", [email.strip().lower()]).fetchone()
        if row is None or row[0] is None:
            raise NotFound("no account with this email")
        return str(row[0])

    def delete_user(self, user_id: str) -> None:
        with self._tx() as cur:
            cur.execute("delete from users where id = %s", [user_id])

    # -- locations and nodes -------------------------------------------------------------

    def create_location(self, location: Location) -> None:
        location.version = 0
        with self._tx() as cur:
            self._put(cur, "locations", {"id": location.id}, {"name": location.name}, location)

    def list_locations(self) -> list[Location]:
        with self._tx() as cur:
            rows = cur.execute("select version, data from locations order by name, id").fetchall()
        return [_load(Location, r) for r in rows]

    def get_location(self, location_id: str) -> Location:
        return self._one(Location, "select version, data from locations where id = %s", [location_id])

    def update_location(self, location: Location) -> None:
        if not location.version:
            raise Conflict("update_location needs a stored version (use create_location)")
        with self._tx() as cur:
            self._put(cur, "locations", {"id": location.id}, {"name": location.name}, location)

    def delete_location(self, location_id: str) -> None:
        """Refused (Conflict) while any node is in it, decided by the deleting statement."""
        with self._tx() as cur:
            cur.execute("delete from locations l where id = %s and not exists"
                        " (select 1 from nodes n where n.location_id = l.id)", [location_id])
            if cur.rowcount == 1:
                return
            found = cur.execute("select 1 from locations where id = %s", [location_id]).fetchone()
        if found is None:
            raise NotFound(f"location {location_id}")
        raise Conflict(f"location {location_id} still has nodes")

    def put_node(self, node: Node) -> None:
        with self._tx() as cur:
            self._put(cur, "nodes", {"id": node.id}, {"location_id": node.location_id}, node)

    def get_node(self, node_id: str) -> Node:
        return self._one(Node, "select version, data from nodes where id = %s", [node_id])

    def list_nodes(self, location_id: str | None = None) -> list[Node]:
        with self._tx() as cur:
            if location_id is None:
                rows = cur.execute("select version, data from nodes order by id").fetchall()
            else:
                rows = cur.execute("select version, data from nodes where location_id = %s order by id",
                                   [location_id]).fetchall()
        return [_load(Node, r) for r in rows]

    def delete_node(self, node: Node) -> None:
        """Refused (Conflict) while servers are on it or it changed, in the deleting statement."""
        with self._tx() as cur:
            cur.execute("delete from nodes n where id = %s and version = %s and not exists"
                        " (select 1 from servers s where s.node_id = n.id)", [node.id, node.version])
            if cur.rowcount == 1:
                return
            found = cur.execute("select 1 from nodes where id = %s", [node.id]).fetchone()
        if found is None:
            raise NotFound(f"node {node.id}")
        raise Conflict(f"node {node.id} still has servers or changed")

    def set_node_status(self, node_id: str, status: str, ts: float, runtime: str | None,
                        isolated: bool | None) -> None:
        """One conditional UPDATE: an older status (earlier ``ts``) never overwrites a newer one."""
        patch: dict[str, Any] = {"status": status, "last_seen": ts}
        if runtime is not None:
            patch["runtime"] = runtime
        if isolated is not None:
            patch["isolated"] = isolated
        with self._tx() as cur:
            cur.execute("update nodes set data = data || %s, version = version + 1 where id = %s"
                        " and coalesce((data->>'last_seen')::float8, '-infinity') <= %s",
                        [Jsonb(patch), node_id, ts])
            if cur.rowcount == 0 and cur.execute("select 1 from nodes where id = %s", [node_id]).fetchone() is None:
                raise NotFound(f"node {node_id}")

    def allocations(self, node_id: str) -> list[Allocation]:
        with self._tx() as cur:
            rows = cur.execute("select version, data from allocations where node_id = %s order by ip, port",
                               [node_id]).fetchall()
        return [_load(Allocation, r) for r in rows]

    # -- servers --------------------------------------------------------------------------

    @staticmethod
    def _server_cols(server: Server) -> dict[str, Any]:
        return {"owner_id": server.owner_id, "node_id": server.node_id, "state_seq": server.state_seq}

    @staticmethod
    def _insert_audit(cur: psycopg.Cursor[Any], entry: AuditEntry) -> None:
        entry.stamp_origin()
        cur.execute("insert into audit (server_key, sk, server_id, actor_id, version, data)"
                    " values (%s, %s, %s, %s, 1, %s)",
                    [entry.server_id or "global", audit_key(entry), entry.server_id, entry.actor_id, _dump(entry)])
        entry.version = 1

    def create_server(self, server: Server, allocations: list[Allocation], audit: AuditEntry) -> None:
        """Server, its ports and the audit entry in one transaction: all of them or none."""
        server.version = 0
        with self._tx() as cur:
            self._put(cur, "servers", {"id": server.id}, self._server_cols(server), server)
            for alloc in allocations:
                alloc.version = 0
                self._put(cur, "allocations", {"node_id": alloc.node_id, "ip": alloc.ip, "port": alloc.port},
                          {"server_id": alloc.server_id}, alloc)
            self._insert_audit(cur, audit)

    def change_allocations(self, server: Server, add: list[Allocation], remove: list[Allocation],
                           audit: AuditEntry) -> None:
        """The server (compare-and-set), ports claimed (the primary key refuses a taken one) or freed
        (only if this server holds them) and the audit entry, in one transaction."""
        with self._tx() as cur:
            self._put(cur, "servers", {"id": server.id}, self._server_cols(server), server)
            for alloc in add:
                alloc.version = 0
                self._put(cur, "allocations", {"node_id": alloc.node_id, "ip": alloc.ip, "port": alloc.port},
                          {"server_id": alloc.server_id}, alloc)
            for alloc in remove:
                cur.execute("delete from allocations where node_id = %s and ip = %s and port = %s"
                            " and server_id = %s", [alloc.node_id, alloc.ip, alloc.port, server.id])
                if cur.rowcount != 1:
                    raise Conflict(f"port {alloc.port} is not held by server {server.id}")
            self._insert_audit(cur, audit)

    def get_server(self, server_id: str) -> Server:
        return self._one(Server, "select version, data from servers where id = %s", [server_id])

    def update_server(self, server: Server) -> Server:
        if not server.version:
            raise Conflict("update_server needs a stored version (use create_server)")
        with self._tx() as cur:
            self._put(cur, "servers", {"id": server.id}, self._server_cols(server), server)
        return server

    def delete_server(self, server: Server, audit: AuditEntry) -> None:
        """Audit first (while the server is still visible to its owner), then the server; ports
        and subusers go with it (ON DELETE CASCADE). A stale version undoes everything."""
        with self._tx() as cur:
            self._insert_audit(cur, audit)
            cur.execute("delete from servers where id = %s and version = %s", [server.id, server.version])
            if cur.rowcount != 1:
                raise Conflict(f"server {server.id} changed or is gone")

    def list_servers_owned(self, user_id: str, limit: int | None = None,
                           cursor: str | None = None) -> Page[Server]:
        return self._page(Server, paging.query_tag("owned", user_id),
                          "select version, data, id from servers where owner_id = %s", [user_id], "id",
                          limit, cursor)

    def list_servers_shared(self, user_id: str, limit: int | None = None,
                            cursor: str | None = None) -> Page[Server]:
        return self._page(Server, paging.query_tag("shared", user_id),
                          "select s.version, s.data, s.id from subusers m join servers s on s.id = m.server_id"
                          " where m.user_id = %s", [user_id], "m.server_id", limit, cursor)

    def list_servers_on_node(self, node_id: str, limit: int | None = None,
                             cursor: str | None = None) -> Page[Server]:
        return self._page(Server, paging.query_tag("node", node_id),
                          "select version, data, id from servers where node_id = %s", [node_id], "id",
                          limit, cursor)

    def apply_state(self, server_id: str, state: str, seq: int, detail: str | None) -> bool:
        """One conditional UPDATE: applied only when ``seq`` is newer than the stored one."""
        with self._tx() as cur:
            cur.execute("update servers set state_seq = %s, version = version + 1, data = data || %s"
                        " where id = %s and state_seq < %s",
                        [seq, Jsonb({"status": state, "state_seq": seq, "status_detail": detail}), server_id, seq])
            return cur.rowcount == 1

    def get_subuser(self, server_id: str, user_id: str) -> Subuser:
        return self._one(Subuser, "select version, data from subusers where server_id = %s and user_id = %s",
                         [server_id, user_id])

    def put_subuser(self, subuser: Subuser) -> None:
        with self._tx() as cur:
            self._put(cur, "subusers", {"server_id": subuser.server_id, "user_id": subuser.user_id}, {}, subuser)

    def list_subusers(self, server_id: str) -> list[Subuser]:
        with self._tx() as cur:
            rows = cur.execute("select version, data from subusers where server_id = %s order by user_id",
                               [server_id]).fetchall()
        return [_load(Subuser, r) for r in rows]

    def delete_subuser(self, server_id: str, user_id: str) -> None:
        with self._tx() as cur:
            cur.execute("delete from subusers where server_id = %s and user_id = %s", [server_id, user_id])
            if cur.rowcount != 1:
                raise NotFound(f"subuser {user_id} of {server_id}")

    # -- broker grants ----------------------------------------------------------------------

    def put_grant(self, grant: Grant) -> None:
        """Create; a row past its TTL does not block (it is gone as far as reads are concerned)."""
        with self._tx() as cur:
            cur.execute("insert into grants (username, user_id, server_id, expires_at, expires, version, data)"
                        " values (%s, %s, %s, %s, %s, 1, %s) on conflict (username) do update set"
                        " user_id = excluded.user_id, server_id = excluded.server_id,"
                        " expires_at = excluded.expires_at, expires = excluded.expires, version = 1,"
                        " data = excluded.data where grants.expires <= %s",
                        [grant.username, grant.user_id, grant.server_id, grant.expires_at,
                         grant.expires_at + GRANT_GRACE_S, _dump(grant), time.time()])
            if cur.rowcount != 1:
                raise Conflict(f"grant {grant.username} exists")
        grant.version = 1

    def get_grant(self, username: str) -> Grant:
        return self._one(Grant, "select version, data from grants where username = %s and expires > %s",
                         [username, time.time()])

    def expired_grants(self, now: float) -> list[Grant]:
        """Every stored grant past its expiry, TTL-dead or not: revocation must not miss one."""
        with self._tx() as cur:
            rows = cur.execute("select version, data from grants where expires_at < %s order by expires_at",
                               [now]).fetchall()
        return [_load(Grant, r) for r in rows]

    def delete_grant(self, username: str) -> None:
        with self._tx() as cur:
            cur.execute("delete from grants where username = %s", [username])

    def list_grants(self, server_id: str, user_id: str | None = None) -> list[Grant]:
        """Every stored grant on a server (of one user), live or expired: what revocation must reach."""
        with self._tx() as cur:
            if user_id is None:
                rows = cur.execute("select version, data from grants where server_id = %s order by user_id, username",
                                   [server_id]).fetchall()
            else:
                rows = cur.execute("select version, data from grants where server_id = %s and user_id = %s"
                                   " order by username", [server_id, user_id]).fetchall()
        return [_load(Grant, r) for r in rows]

    # -- audit ----------------------------------------------------------------------------

    def add_audit(self, entry: AuditEntry) -> None:
        with self._tx() as cur:
            self._insert_audit(cur, entry)

    def list_audit(self, server_id: str, limit: int | None = 50,
                   cursor: str | None = None) -> Page[AuditEntry]:
        """Newest first."""
        return self._page(AuditEntry, paging.query_tag("audit", server_id),
                          "select version, data, sk from audit where server_key = %s", [server_id], "sk",
                          limit, cursor, desc=True)

    def list_audit_all(self, limit: int | None = 50, cursor: str | None = None) -> Page[AuditEntry]:
        """Every server's and every account's entries, newest first; RLS shows the whole log to admins only."""
        if not self.actor.is_admin:
            return Page([], None)
        return self._page(AuditEntry, paging.query_tag("audit-all"),
                          "select version, data, sk from audit where true", [], "sk", limit, cursor, desc=True)

    # -- idempotency and rate limits ------------------------------------------------------------

    def claim_idempotency(self, record: Idempotency) -> None:
        with self._tx() as cur:
            cur.execute("insert into idempotency (user_id, key, expires, version, data) values (%s, %s, %s, 1, %s)"
                        " on conflict (user_id, key) do update set expires = excluded.expires, version = 1,"
                        " data = excluded.data where idempotency.expires <= %s",
                        [record.user_id, record.key, record.expires_at, _dump(record), time.time()])
            if cur.rowcount != 1:
                raise Conflict(f"idempotency key {record.key} is in use")
        record.version = 1

    def get_idempotency(self, user_id: str, key: str) -> Idempotency:
        return self._one(Idempotency, "select version, data from idempotency where user_id = %s and key = %s"
                         " and expires > %s", [user_id, key, time.time()])

    def finish_idempotency(self, record: Idempotency) -> Idempotency:
        with self._tx() as cur:
            cur.execute("update idempotency set data = %s, expires = %s, version = version + 1"
                        " where user_id = %s and key = %s and version = %s and expires > %s",
                        [_dump(record), record.expires_at, record.user_id, record.key, record.version, time.time()])
            if cur.rowcount != 1:
                raise Conflict(f"idempotency key {record.key} changed or expired")
        record.version += 1
        return record

    def count_hit(self, bucket: str, window_s: int, now: float | None = None) -> int:
        now = time.time() if now is None else now
        window = int(now // window_s) * window_s
        with self._tx() as cur:
            row = cur.execute("insert into rate_counters (bucket, window_start, hits, expires) values (%s, %s, 1, %s)"
                              " on conflict (bucket, window_start) do update set hits = rate_counters.hits + 1"
                              " returning hits", [bucket, window, window + 2 * window_s]).fetchone()
        assert row is not None
        return int(row[0])

    def peek_hits(self, bucket: str, window_s: int, now: float | None = None) -> int:
        now = time.time() if now is None else now
        window = int(now // window_s) * window_s
        with self._tx() as cur:
            row = cur.execute("select hits from rate_counters where bucket = %s and window_start = %s",
                              [bucket, window]).fetchone()
        return int(row[0]) if row else 0

    # -- blueprints -------------------------------------------------------------------------

    def create_blueprint_version(self, version: BlueprintVersion) -> BlueprintVersion:
        """Add a version (number 0: latest + 1); an existing or older number is a Conflict.

        Serialised per blueprint by an advisory lock, so "newer than the latest" holds under races;
        the row itself can never be rewritten (no UPDATE grant, no UPDATE policy)."""
        with self._tx() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtextextended('blueprint:' || %s, 0))",
                        [version.blueprint_id])
            row = cur.execute("select max(number) from blueprint_versions where blueprint_id = %s",
                              [version.blueprint_id]).fetchone()
            latest = int(row[0]) if row and row[0] is not None else 0
            if not version.number:
                version.number = latest + 1
            elif version.number <= latest:
                raise Conflict(f"blueprint {version.blueprint_id} v{version.number} exists or is not newest")
            if not self.actor.is_admin:  # said plainly; the policy would refuse the insert anyway
                raise NotFound("blueprints are written only through the admin bypass")
            version.version = 0
            self._put(cur, "blueprint_versions", {"blueprint_id": version.blueprint_id, "number": version.number},
                      {}, version)
        return version

    def get_blueprint_version(self, blueprint_id: str, number: int | None = None) -> BlueprintVersion:
        if number is None:
            return self._one(BlueprintVersion, "select version, data from blueprint_versions where blueprint_id = %s"
                             " order by number desc limit 1", [blueprint_id])
        return self._one(BlueprintVersion, "select version, data from blueprint_versions"
                         " where blueprint_id = %s and number = %s", [blueprint_id, number])

    def list_blueprints(self, limit: int | None = None, cursor: str | None = None) -> Page[BlueprintVersion]:
        """The latest version of every blueprint, by id (DISTINCT ON walks the primary key)."""
        return self._page(BlueprintVersion, paging.query_tag("blueprints"),
                          "select * from (select distinct on (blueprint_id) version, data, blueprint_id"
                          " from blueprint_versions order by blueprint_id, number desc) latest where true",
                          [], "blueprint_id", limit, cursor)

    def list_blueprint_versions(self, blueprint_id: str) -> list[BlueprintVersion]:
        with self._tx() as cur:
            rows = cur.execute("select version, data from blueprint_versions where blueprint_id = %s"
                               " order by number", [blueprint_id]).fetchall()
        return [_load(BlueprintVersion, r) for r in rows]

    # -- schedules ------------------------------------------------------------------------

    @staticmethod
    def _schedule_cols(schedule: Schedule) -> dict[str, Any]:
        return {"enabled": schedule.enabled, "next_run": schedule.next_run}

    def put_schedule(self, schedule: Schedule) -> None:
        with self._tx() as cur:
            self._put(cur, "schedules", {"server_id": schedule.server_id, "id": schedule.id},
                      self._schedule_cols(schedule), schedule)

    def get_schedule(self, server_id: str, schedule_id: str) -> Schedule:
        return self._one(Schedule, "select version, data from schedules where server_id = %s and id = %s",
                         [server_id, schedule_id])

    def list_schedules(self, server_id: str) -> list[Schedule]:
        with self._tx() as cur:
            rows = cur.execute("select version, data from schedules where server_id = %s order by id",
                               [server_id]).fetchall()
        return [_load(Schedule, r) for r in rows]

    def delete_schedule(self, schedule: Schedule) -> None:
        with self._tx() as cur:
            cur.execute("delete from schedules where server_id = %s and id = %s and version = %s",
                        [schedule.server_id, schedule.id, schedule.version])
            if cur.rowcount != 1:
                raise Conflict(f"schedule {schedule.id} changed or is gone")

    def due_schedules(self, now: float, limit: int = 100) -> list[Schedule]:
        """Served by the partial index ``schedules_due``: earliest first, enabled only."""
        with self._tx() as cur:
            rows = cur.execute("select version, data from schedules where enabled and next_run is not null"
                               " and next_run <= %s order by next_run, server_id, id limit %s",
                               [now, limit]).fetchall()
        return [_load(Schedule, r) for r in rows]

    def claim_schedule_run(self, schedule: Schedule, next_run: float | None, now: float) -> bool:
        """One conditional UPDATE keyed on the run being claimed: of two tickers, exactly one wins."""
        with self._tx() as cur:
            row = cur.execute("update schedules set next_run = %s, version = version + 1, data = data || %s"
                              " where server_id = %s and id = %s and enabled and next_run = %s returning version",
                              [next_run, Jsonb({"next_run": next_run, "last_run": now}), schedule.server_id,
                               schedule.id, schedule.next_run]).fetchone()
        if row is None:
            return False
        schedule.last_run, schedule.next_run, schedule.version = now, next_run, int(row[0])
        return True

    # -- backups --------------------------------------------------------------------------

    def create_backup(self, backup: Backup, limit: int) -> None:
        """Count and insert under a per-server advisory lock: the limit holds under races."""
        backup.version = 0
        with self._tx() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtextextended('backups:' || %s, 0))", [backup.server_id])
            row = cur.execute("select count(*) from backups where server_id = %s", [backup.server_id]).fetchone()
            if row is not None and int(row[0]) >= limit:
                raise LimitReached(f"server {backup.server_id} has {limit} backups already")
            self._put(cur, "backups", {"server_id": backup.server_id, "id": backup.id}, {"locked": backup.locked},
                      backup)

    def get_backup(self, server_id: str, backup_id: str) -> Backup:
        return self._one(Backup, "select version, data from backups where server_id = %s and id = %s",
                         [server_id, backup_id])

    def update_backup(self, backup: Backup) -> Backup:
        if not backup.version:
            raise Conflict("update_backup needs a stored version (use create_backup)")
        with self._tx() as cur:
            self._put(cur, "backups", {"server_id": backup.server_id, "id": backup.id}, {"locked": backup.locked},
                      backup)
        return backup

    def delete_backup(self, server_id: str, backup_id: str) -> None:
        """Refused (Conflict) while locked, decided by the same statement that deletes."""
        with self._tx() as cur:
            cur.execute("delete from backups where server_id = %s and id = %s and not locked", [server_id, backup_id])
            if cur.rowcount == 1:
                return
            row = cur.execute("select locked from backups where server_id = %s and id = %s",
                              [server_id, backup_id]).fetchone()
        if row is None:
            raise NotFound(f"backup {backup_id}")
        raise Conflict(f"backup {backup_id} is locked")

    def list_backups(self, server_id: str, limit: int | None = None, cursor: str | None = None) -> Page[Backup]:
        return self._page(Backup, paging.query_tag("backups", server_id),
                          "select version, data, id from backups where server_id = %s", [server_id], "id",
                          limit, cursor)

    def count_backups(self, server_id: str) -> int:
        with self._tx() as cur:
            row = cur.execute("select count(*) from backups where server_id = %s", [server_id]).fetchone()
        return int(row[0]) if row else 0

    # -- API keys --------------------------------------------------------------------------

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKey:
        """Rows are (version, data, last_used, ...): the last use lives in its own column."""
        key = _load(ApiKey, row)
        key.last_used_at = float(row[2]) if row[2] is not None else None
        return key

    def create_api_key(self, key: ApiKey) -> None:
        key.version = 0
        with self._tx() as cur:
            self._put(cur, "api_keys", {"prefix": key.prefix},
                      {"user_id": key.user_id, "key_hash": key.key_hash, "expires": key.expires_at,
                       "revoked_at": key.revoked_at, "last_used": key.last_used_at}, key)

    def authenticate_api_key(self, prefix: str, key_hash: str, now: float | None = None) -> ApiKey:
        """Through ``stellar_api_key_lookup``: needs no acting user, only the secret's hash."""
        with self._tx() as cur:
            row = cur.execute("select version, data, last_used from stellar_api_key_lookup(%s, %s, %s)",
                              [prefix, key_hash, time.time() if now is None else now]).fetchone()
        if row is None:
            raise NotFound("no such API key")
        return self._key(row)

    def list_api_keys(self, user_id: str, limit: int | None = None, cursor: str | None = None) -> Page[ApiKey]:
        tag = paging.query_tag("apikeys", user_id)
        after = paging.decode(tag, cursor)
        query = ("select version, data, last_used, prefix from api_keys where user_id = %s"
                 " and (expires is null or expires > %s)")
        args: list[Any] = [user_id, time.time()]
        if after is not None:
            query += " and prefix > %s"
            args.append(after)
        query += " order by prefix"
        if limit:
            query += " limit %s"
            args.append(limit + 1)
        with self._tx() as cur:
            rows = cur.execute(query, args).fetchall()  # type: ignore[arg-type]  # fixed text
        page = paging.cut(tag, rows, limit, lambda r: str(r[3]))
        return Page([self._key(r) for r in page], page.cursor)

    def revoke_api_key(self, prefix: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as cur:
            cur.execute("update api_keys set revoked_at = coalesce(revoked_at, %s), version = version + 1,"
                        " data = data || jsonb_build_object('revoked_at', coalesce(revoked_at, %s))"
                        " where prefix = %s and (expires is null or expires > %s)", [now, now, prefix, now])
            if cur.rowcount != 1:
                raise NotFound(f"API key {prefix}")

    def touch_api_key(self, prefix: str, now: float | None = None) -> None:
        """Move ``last_used`` forward without bumping the version."""
        now = time.time() if now is None else now
        with self._tx() as cur:
            cur.execute("update api_keys set last_used = greatest(coalesce(last_used, 0), %s)"
                        " where prefix = %s and (expires is null or expires > %s)", [now, prefix, now])
            if cur.rowcount != 1:
                raise NotFound(f"API key {prefix}")

    # -- retention ----------------------------------------------------------------------------

    def prune_admin_bypass(self, older_than_days: int) -> int:
        """Delete bypass records older than ``older_than_days`` (at least 1); returns how many."""
        if older_than_days < 1:
            raise ValueError("admin bypass retention must keep at least one day")
        with self._tx() as cur:
            row = cur.execute("select stellar_prune_admin_bypass(%s)", [older_than_days]).fetchone()
        return int(row[0]) if row else 0
