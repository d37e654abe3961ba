"""The contract for blueprint versions, schedules, backups and API keys, run unchanged against
DynamoDB (moto) and PostgreSQL, plus the audit trail of admin access on both."""

from __future__ import annotations

import time

import pytest
from chalicelib.store import Conflict, LimitReached, NotFound
from chalicelib.store.base import Store
from chalicelib.store.records import ApiKey, Backup, BlueprintVersion, Node, Schedule, ScheduleTask
from pydantic import ValidationError

from .conftest import uid
from .test_contract import _walk, make_server

# -- blueprints: immutable versions -------------------------------------------------------------------


def test_blueprint_versions_are_numbered_immutable_and_listed_latest(store: Store):
    admin = store.as_admin("blueprint import")
    bid = uid("bp")
    v1 = admin.create_blueprint_version(BlueprintVersion(blueprint_id=bid, name="Game", definition={"a": 1}))
    v2 = admin.create_blueprint_version(BlueprintVersion(blueprint_id=bid, name="Game", definition={"a": 2}))
    assert (v1.number, v2.number) == (1, 2)
    with pytest.raises(Conflict):  # an existing version is never overwritten...
        admin.create_blueprint_version(BlueprintVersion(blueprint_id=bid, number=2, name="X", definition={"a": 9}))
    with pytest.raises(Conflict):  # ...nor can an older number be slipped in behind the latest
        admin.create_blueprint_version(BlueprintVersion(blueprint_id=bid, number=1, name="X"))
    admin.create_blueprint_version(BlueprintVersion(blueprint_id=bid, number=5, name="Game", definition={"a": 5}))
    reader = store.as_user(uid("u"))  # readable by everyone
    assert reader.get_blueprint_version(bid).definition == {"a": 5}
    assert reader.get_blueprint_version(bid, 2).definition == {"a": 2}
    assert [v.number for v in reader.list_blueprint_versions(bid)] == [1, 2, 5]
    with pytest.raises(NotFound):
        reader.get_blueprint_version(bid, 3)
    with pytest.raises(NotFound):  # writable only through the admin bypass
        reader.create_blueprint_version(BlueprintVersion(blueprint_id=bid, name="mine"))
    others = sorted(uid(f"{bid}-") for _ in range(3))
    for other in others:
        admin.create_blueprint_version(BlueprintVersion(blueprint_id=other, name=other))
    listed = [(v.blueprint_id, v.number) for v in _all(lambda n, c: reader.list_blueprints(n, c), 2)]
    mine = [x for x in listed if x[0].startswith(bid)]
    assert mine == [(bid, 5)] + [(o, 1) for o in others]
    assert [b for b, _ in listed] == sorted(b for b, _ in listed)


def _all(fetch, limit: int) -> list:
    out, cursor = [], None
    while True:
        page = fetch(limit, cursor)
        out += list(page)
        if (cursor := page.cursor) is None:
            return out


# -- schedules ------------------------------------------------------------------------------------------


def _schedule(server_id: str, next_run: float | None, **kw: object) -> Schedule:
    kw.setdefault("timezone", "Europe/Berlin")
    return Schedule(server_id=server_id, name="nightly", cron="0 4 * * *",
                    tasks=[ScheduleTask(action="command", payload="say bye"),
                           ScheduleTask(action="power", payload="restart", offset_s=30)],
                    next_run=next_run, **kw)  # type: ignore[arg-type]


def test_schedules_keep_their_ordered_tasks_and_lock_optimistically(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    sched = _schedule(server.id, 1000.0, only_when_online=True)
    me.put_schedule(sched)
    with pytest.raises(Conflict):
        me.put_schedule(sched.model_copy(update={"version": 0}))
    got = me.get_schedule(server.id, sched.id)
    assert [(t.action, t.offset_s) for t in got.tasks] == [("command", 0), ("power", 30)]
    assert (got.timezone, got.only_when_online, got.version) == ("Europe/Berlin", True, 1)
    stale = me.get_schedule(server.id, sched.id)
    got.last_result = "ok"
    me.put_schedule(got)
    stale.enabled = False
    with pytest.raises(Conflict):
        me.put_schedule(stale)
    assert [s.id for s in me.list_schedules(server.id)] == [sched.id]
    with pytest.raises(Conflict):
        me.delete_schedule(stale)
    me.delete_schedule(got)
    assert me.list_schedules(server.id) == []
    with pytest.raises(ValidationError):
        _schedule(server.id, None, timezone="Mars/Olympus")


def test_due_schedules_come_from_the_index_earliest_first_and_a_run_is_claimed_once(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    base = 2_000_000_000.0 + (hash(server.id) % 1000) * 1000  # an instant no other test schedules at
    early, late, future = (_schedule(server.id, base + d) for d in (1, 2, 500))
    off = _schedule(server.id, base, enabled=False)
    never = _schedule(server.id, None)
    for s in (late, early, future, off, never):
        me.put_schedule(s)
    ticker = store.as_admin("schedule ticker")
    due = [s.id for s in ticker.due_schedules(base + 10) if s.server_id == server.id]
    assert due == [early.id, late.id]
    run = next(s for s in ticker.due_schedules(base + 10) if s.id == early.id)
    assert ticker.claim_schedule_run(run, base + 86_400, now=base + 10)
    assert not ticker.claim_schedule_run(run.model_copy(update={"next_run": base + 1}), base + 86_400, base + 11)
    got = me.get_schedule(server.id, early.id)
    assert (got.last_run, got.next_run) == (base + 10, base + 86_400)
    assert [s.id for s in ticker.due_schedules(base + 10) if s.server_id == server.id] == [late.id]
    assert not ticker.claim_schedule_run(off, base + 1, base + 10)  # disabled: never claimed


# -- backups ---------------------------------------------------------------------------------------------


def test_backups_are_counted_limited_and_locked_ones_cannot_be_deleted(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    made = sorted((Backup(id=uid("b"), server_id=server.id, name=f"b{i}") for i in range(3)), key=lambda b: b.id)
    for b in made:
        me.create_backup(b, limit=3)
    assert me.count_backups(server.id) == 3
    with pytest.raises(LimitReached):
        me.create_backup(Backup(server_id=server.id, name="one too many"), limit=3)
    with pytest.raises(Conflict):
        me.create_backup(made[0].model_copy(update={"version": 0}), limit=10)  # same id
    assert me.count_backups(server.id) == 3
    first = me.get_backup(server.id, made[0].id)
    first.status, first.size_bytes, first.sha256, first.locked = "completed", 1234, "ab" * 32, True
    me.update_backup(first)
    with pytest.raises(Conflict):
        me.update_backup(made[0])  # stale
    with pytest.raises(Conflict):
        me.delete_backup(server.id, first.id)  # locked
    me.delete_backup(server.id, made[1].id)
    with pytest.raises(NotFound):
        me.delete_backup(server.id, made[1].id)
    assert me.count_backups(server.id) == 2
    me.create_backup(Backup(server_id=server.id, name="room again"), limit=3)
    ids, sizes = _walk(lambda n, c: me.list_backups(server.id, n, c), 2)
    assert ids == sorted(ids) and len(ids) == 3 and sizes == [2, 1]
    got = me.get_backup(server.id, first.id)
    assert (got.status, got.size_bytes, got.locked) == ("completed", 1234, True)


def test_deleting_a_server_takes_its_schedules_and_backups(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    me.put_schedule(_schedule(server.id, 5.0))
    me.create_backup(Backup(server_id=server.id, name="b", locked=True), limit=5)
    from chalicelib.store.records import AuditEntry

    me.delete_server(me.get_server(server.id), AuditEntry(actor_id=owner, action="server.delete", server_id=server.id))
    admin = store.as_admin("test")
    assert admin.list_schedules(server.id) == [] and list(admin.list_backups(server.id)) == []
    assert admin.count_backups(server.id) == 0
    assert server.id not in {s.server_id for s in admin.due_schedules(10.0, 1000)}


# -- API keys ---------------------------------------------------------------------------------------------


def test_api_keys_store_only_a_hash_authenticate_expire_and_revoke(store: Store):
    user, other = uid("u"), uid("o")
    me = store.as_user(user)
    key, token = ApiKey.mint(user, "ci")
    assert token.split("_", 2)[2] not in key.model_dump_json()  # the secret itself is never kept
    me.create_api_key(key)
    with pytest.raises(Conflict):
        me.create_api_key(key.model_copy(update={"version": 0}))
    nobody = store  # authentication happens before anyone is known
    prefix, digest = ApiKey.split(token)
    assert nobody.authenticate_api_key(prefix, digest).user_id == user
    with pytest.raises(NotFound):
        nobody.authenticate_api_key(prefix, ApiKey.split(token + "x")[1])  # wrong secret
    expiring, expiring_token = ApiKey.mint(user, "short", expires_at=time.time() - 1)
    me.create_api_key(expiring)
    with pytest.raises(NotFound):  # expiry honoured on read, before any TTL deletion
        nobody.authenticate_api_key(*ApiKey.split(expiring_token))
    later, _ = ApiKey.mint(user, "later", expires_at=time.time() + 3600)
    me.create_api_key(later)
    listed = _all(lambda n, c: me.list_api_keys(user, n, c), 1)
    assert [k.prefix for k in listed] == sorted([key.prefix, later.prefix])
    assert list(store.as_user(other).list_api_keys(user)) == []  # only their user sees them
    me.touch_api_key(prefix, 500.0)
    me.touch_api_key(prefix, 400.0)  # an older use never moves it back
    assert nobody.authenticate_api_key(prefix, digest).last_used_at == 500.0
    with pytest.raises(NotFound):
        store.as_user(other).revoke_api_key(prefix)
    me.revoke_api_key(prefix, now=600.0)
    with pytest.raises(NotFound):
        nobody.authenticate_api_key(prefix, digest)
    (revoked,) = [k for k in me.list_api_keys(user) if k.prefix == prefix]
    assert (revoked.revoked_at, revoked.last_used_at) == (600.0, 500.0)
    with pytest.raises(ValueError):
        ApiKey.split("Bearer something")


# -- admin access is audited ---------------------------------------------------------------------------------


def test_an_admin_person_on_someone_elses_server_leaves_a_trace(store: Store, node: Node, request):
    owner, admin_user = uid("u"), uid("adm")
    server = make_server(store, node, owner, [])
    person = store.as_admin(f"admin request by {admin_user}", admin_user)
    person.get_server(server.id)
    person.get_server(server.id)
    store.as_admin("placement").get_server(server.id)  # the control plane's own machinery: no person
    store.as_user(owner).get_server(server.id)
    if request.node.callspec.params["store"] == "dynamodb":
        entries = [e for e in store.as_user(owner).list_audit(server.id) if e.action == "admin.access"]
        assert [(e.actor_id, e.details["owner"]) for e in entries] == [(admin_user, owner)]
    else:  # PostgreSQL records each bypass in its own table (see test_rls)
        assert [e.action for e in store.as_user(owner).list_audit(server.id)] == ["server.create"]
