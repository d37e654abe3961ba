"""PostgreSQL tenancy: row-level security applied to the application role, proven by querying
as another user (through the store and through raw SQL on the app role) and getting no rows."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from chalicelib.store import Conflict, NotFound
from chalicelib.store.postgres import PostgresStore
from chalicelib.store.records import AuditEntry, Grant, Location, Node, Server, Subuser

from .conftest import uid
from .test_contract import make_server


@pytest.fixture
def world(pg_store: PostgresStore) -> dict[str, object]:
    admin = pg_store.as_admin("rls fixture")
    loc = Location(id=uid("loc"), name="x")
    admin.create_location(loc)
    node = Node(id=uid("n"), name="n", location_id=loc.id, memory_mb=1, disk_mb=1, port_start=1, port_end=9)
    admin.put_node(node)
    owner, friend, stranger = uid("own"), uid("fr"), uid("str")
    server = make_server(pg_store, node, owner, [5, 6])
    pg_store.as_user(owner).put_subuser(Subuser(server_id=server.id, user_id=friend, permissions=["console.read"]))
    pg_store.as_user(owner).put_grant(Grant(username=uid("v"), user_id=owner, server_id=server.id,
                                            node_id=node.id, expires_at=9e9))
    return {"node": node, "server": server, "owner": owner, "friend": friend, "stranger": stranger}


def _count_as(dsn: str, user: str | None, table: str, where: str, arg: str) -> int:
    with psycopg.connect(dsn) as conn:
        if user is not None:
            conn.execute("select set_config('stellar.user_id', %s, true)", [user])
        row = conn.execute(f"select count(*) from {table} where {where} = %s", [arg]).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


TENANT_ROWS = [("servers", "id"), ("allocations", "server_id"), ("subusers", "server_id"), ("audit", "server_id"),
               ("grants", "server_id")]


def test_another_user_sees_no_rows_through_the_app_role(world, pg_database):
    _, app_dsn = pg_database
    sid = world["server"].id
    for table, col in TENANT_ROWS:
        assert _count_as(app_dsn, world["owner"], table, col, sid) >= 1, table
        assert _count_as(app_dsn, world["stranger"], table, col, sid) == 0, table
        assert _count_as(app_dsn, None, table, col, sid) == 0, table  # nobody named: nothing


def test_another_user_sees_nothing_through_the_store(world, pg_store):
    s, sid = pg_store.as_user(world["stranger"]), world["server"].id
    with pytest.raises(NotFound):
        s.get_server(sid)
    with pytest.raises(NotFound):
        s.get_subuser(sid, world["friend"])
    assert list(s.list_servers_owned(world["owner"])) == []
    assert list(s.list_servers_on_node(world["node"].id)) == []
    assert list(s.list_audit(sid)) == []
    assert s.allocations(world["node"].id) == []
    with pytest.raises(NotFound):
        pg_store.get_server(sid)  # an unscoped store acts as nobody


def test_a_subuser_sees_the_server_and_what_hangs_off_it_but_not_the_owners_grants(world, pg_store):
    f, sid = pg_store.as_user(world["friend"]), world["server"].id
    assert f.get_server(sid).id == sid
    assert [s.id for s in f.list_servers_shared(world["friend"])] == [sid]
    assert [e.action for e in f.list_audit(sid)] == ["server.create"]
    assert {a.port for a in f.allocations(world["node"].id)} == {5, 6}
    assert _count_as(pg_store_dsn(pg_store), world["friend"], "grants", "server_id", sid) == 0


def pg_store_dsn(store: PostgresStore) -> str:
    return store._pool.conninfo


def test_another_user_cannot_write_into_a_tenancy(world, pg_store):
    s, server = pg_store.as_user(world["stranger"]), world["server"]
    with pytest.raises(NotFound):
        s.add_audit(AuditEntry(actor_id=world["stranger"], action="x", server_id=server.id))
    with pytest.raises(NotFound):  # cannot create a server in someone else's name
        s.create_server(Server(**{**server.model_dump(), "id": uid("s"), "ports": []}), [],
                        AuditEntry(actor_id=world["stranger"], action="server.create"))
    fresh = pg_store.as_user(world["owner"]).get_server(server.id)
    with pytest.raises(Conflict):  # invisible, so the compare-and-set finds no row
        s.update_server(fresh)
    with pytest.raises(NotFound):  # its audit entry is refused first
        s.delete_server(fresh, AuditEntry(actor_id=world["stranger"], action="server.delete",
                                         server_id=server.id))
    assert pg_store.as_user(world["owner"]).get_server(server.id).version == fresh.version


def test_the_admin_bypass_sees_everything_and_is_recorded(world, pg_store, pg_database):
    owner_dsn, _ = pg_database
    reason = f"support ticket {uid()}"
    assert pg_store.as_admin(reason).get_server(world["server"].id).owner_id == world["owner"]
    with psycopg.connect(owner_dsn) as conn:
        rows = conn.execute("select role from admin_bypass where reason = %s", [reason]).fetchall()
    assert rows == [("stellar_app",)]
    with pytest.raises(ValueError):
        pg_store.as_admin("  ")


def test_the_app_role_cannot_forge_a_bypass_or_rewrite_history(world, pg_database):
    _, app_dsn = pg_database
    with psycopg.connect(app_dsn) as conn:
        role = conn.execute("select rolsuper, rolbypassrls from pg_roles where rolname = current_user").fetchone()
        assert role == (False, False)
        owners = conn.execute("select count(*) from pg_tables where schemaname = 'public'"
                              " and tableowner = current_user").fetchone()
        assert owners == (0,)
    for statement in ("insert into admin_bypass (xid, reason) values (pg_current_xact_id(), 'x')",
                      "delete from audit", "update audit set actor_id = 'x'",
                      "alter table servers disable row level security"):
        with psycopg.connect(app_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)  # type: ignore[arg-type]
    with psycopg.connect(app_dsn) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("select stellar_admin_bypass('')")


def test_migrations_are_versioned_and_idempotent(pg_database):
    from chalicelib.store import migrate

    owner_dsn, _ = pg_database
    assert migrate.migrate(owner_dsn) == []
    with psycopg.connect(owner_dsn) as conn:
        applied = conn.execute("select version, name from schema_migrations order by version").fetchall()
    shipped = sorted((Path(migrate.__file__).parent / "migrations").glob("*.sql"))
    assert applied == [(int(f.name[:4]), f.name) for f in shipped]  # every file, once, in number order
    assert applied[:3] == [(1, "0001_init.sql"), (2, "0002_blueprints_schedules_backups_keys.sql"),
                           (3, "0003_subusers_grants_audit.sql")]


@pytest.fixture
def more(world, pg_store):
    from chalicelib.store.records import ApiKey, Backup, Schedule

    owner, sid = world["owner"], world["server"].id
    me = pg_store.as_user(owner)
    me.put_schedule(Schedule(server_id=sid, name="n", cron="* * * * *", next_run=1.0))
    me.create_backup(Backup(server_id=sid, name="b"), limit=5)
    key, token = ApiKey.mint(owner, "ci")
    me.create_api_key(key)
    return {**world, "key": key, "token": token}


def test_schedules_backups_and_keys_follow_tenancy(more, pg_database):
    _, app_dsn = pg_database
    sid, owner, friend, stranger = more["server"].id, more["owner"], more["friend"], more["stranger"]
    for table in ("schedules", "backups"):
        assert _count_as(app_dsn, owner, table, "server_id", sid) == 1, table
        assert _count_as(app_dsn, friend, table, "server_id", sid) == 1, table  # follows the server
        assert _count_as(app_dsn, stranger, table, "server_id", sid) == 0, table
        assert _count_as(app_dsn, None, table, "server_id", sid) == 0, table
    assert _count_as(app_dsn, owner, "api_keys", "user_id", owner) == 1
    assert _count_as(app_dsn, friend, "api_keys", "user_id", owner) == 0  # keys: their user only
    assert _count_as(app_dsn, None, "api_keys", "user_id", owner) == 0


def test_strangers_cannot_write_schedules_backups_or_keys(more, pg_store):
    from chalicelib.store.records import ApiKey, Backup, Schedule

    s, sid = pg_store.as_user(more["stranger"]), more["server"].id
    with pytest.raises(NotFound):
        s.put_schedule(Schedule(server_id=sid, name="evil", cron="* * * * *", next_run=1.0))
    with pytest.raises(NotFound):
        s.create_backup(Backup(server_id=sid, name="evil"), limit=5)
    with pytest.raises(NotFound):
        s.create_api_key(ApiKey.mint(more["owner"], "in your name")[0])
    with pytest.raises(NotFound):
        s.touch_api_key(more["key"].prefix)
    assert s.count_backups(sid) == 0 and s.list_schedules(sid) == []
    # ...while authentication needs no acting user, only the secret
    assert pg_store.authenticate_api_key(*ApiKey.split(more["token"])).user_id == more["owner"]


def test_blueprints_are_read_by_all_and_written_only_under_the_bypass(pg_store, pg_database):
    from chalicelib.store.records import BlueprintVersion

    _, app_dsn = pg_database
    bid = uid("bp")
    pg_store.as_admin("import").create_blueprint_version(BlueprintVersion(blueprint_id=bid, name="x"))
    assert pg_store.get_blueprint_version(bid).number == 1  # even acting as nobody
    with psycopg.connect(app_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select set_config('stellar.user_id', 'someone', true)")
        conn.execute("insert into blueprint_versions values (%s, 2, 1, '{}')", [bid])
    for statement in ("update blueprint_versions set data = '{}'", "delete from blueprint_versions"):
        with psycopg.connect(app_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select stellar_admin_bypass('even an admin')")
            conn.execute(statement)  # type: ignore[arg-type]  # immutable: no grant at all


def test_admin_bypass_records_are_pruned_after_retention_but_never_the_last_day(pg_store, pg_database):
    owner_dsn, _ = pg_database
    old, recent = f"old {uid()}", f"recent {uid()}"
    with psycopg.connect(owner_dsn) as conn:
        conn.execute("insert into admin_bypass (xid, reason, at) values"
                     " (pg_current_xact_id(), %s, now() - interval '100 days'),"
                     " (pg_current_xact_id(), %s, now() - interval '10 days')", [old, recent])
    assert pg_store.as_admin("sweeper").prune_admin_bypass(90) >= 1
    with psycopg.connect(owner_dsn) as conn:
        left = {r[0] for r in conn.execute("select reason from admin_bypass where reason in (%s, %s)", [old, recent])}
    assert left == {recent}
    with pytest.raises(ValueError):
        pg_store.prune_admin_bypass(0)
    with psycopg.connect(pg_store_dsn(pg_store)) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("select stellar_prune_admin_bypass(0)")  # the floor holds in the database too
