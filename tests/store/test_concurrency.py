"""Races on both backends, with real threads and separate connections: the last free port goes
to exactly one of two clients, and of two racing state changes one wins, one gets Conflict."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from chalicelib.store import Conflict
from chalicelib.store.base import Store
from chalicelib.store.records import Node

from .conftest import uid
from .test_contract import make_server

ROUNDS = 5


def _race(*fns: Callable[[], object]) -> list[str]:
    """Run ``fns`` at the same instant; each outcome is 'ok' or 'conflict' (anything else fails)."""
    barrier = threading.Barrier(len(fns))
    out: list[str] = [""] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            fns[i]()
            out[i] = "ok"
        except Conflict:
            out[i] = "conflict"
        except Exception as exc:  # reported, so the assertion shows what went wrong
            out[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_two_clients_racing_for_the_last_free_port(store: Store, node: Node):
    admin = store.as_admin("test")
    for rnd in range(ROUNDS):
        port = 30000 + rnd
        a, b, ua, ub = uid("a"), uid("b"), uid("ua"), uid("ub")
        outcome = _race(partial(make_server, store, node, ua, [port], sid=a),
                        partial(make_server, store, node, ub, [port], sid=b))
        assert sorted(outcome) == ["conflict", "ok"], outcome
        winner = a if outcome[0] == "ok" else b
        holders = [x.server_id for x in admin.allocations(node.id) if x.port == port]
        assert holders == [winner]
        loser = b if winner == a else a
        assert [s.id for s in admin.list_servers_on_node(node.id) if s.id == loser] == []
        assert list(admin.list_audit(loser)) == []  # nothing of the loser half-written


def test_two_racing_state_changes_on_one_server(store: Store, node: Node):
    owner = uid("u")
    server = make_server(store, node, owner, [30009])
    me = store.as_user(owner)
    for _ in range(ROUNDS):
        a, b = me.get_server(server.id), me.get_server(server.id)
        a.status, a.status_detail = "running", "by a"
        b.status, b.status_detail = "offline", "by b"
        outcome = _race(partial(me.update_server, a), partial(me.update_server, b))
        assert sorted(outcome) == ["conflict", "ok"], outcome
        winner = a if outcome[0] == "ok" else b
        got = me.get_server(server.id)
        assert (got.status, got.status_detail, got.version) == (winner.status, winner.status_detail, winner.version)
        assert got.version == a.version if winner is a else got.version == b.version


def test_two_tickers_fire_each_due_schedule_exactly_once(store: Store, node: Node):
    from chalicelib.store.records import Schedule, ScheduleTask

    server = make_server(store, node, uid("u"), [])
    admin = store.as_admin("test")
    base = 3_000_000_000.0 + (hash(server.id) % 1000) * 1000
    made = set()
    for i in range(6):
        s = Schedule(server_id=server.id, name=f"s{i}", cron="* * * * *", next_run=base + i,
                     tasks=[ScheduleTask(action="command", payload="x")])
        admin.put_schedule(s)
        made.add(s.id)
    fired: list[list[str]] = [[], []]

    def tick(i: int) -> None:
        ticker = store.as_admin(f"ticker {i}")
        for due in ticker.due_schedules(base + 100, limit=1000):
            if due.server_id == server.id and ticker.claim_schedule_run(due, base + 3600 + i, base + 100):
                fired[i].append(due.id)

    outcome = _race(partial(tick, 0), partial(tick, 1))
    assert outcome == ["ok", "ok"], outcome
    assert sorted(fired[0] + fired[1]) == sorted(made)  # every one fired, none twice
    for sid in made:  # and the winner's next_run is what is stored
        got = admin.get_schedule(server.id, sid)
        winner = 0 if sid in fired[0] else 1
        assert got.next_run == base + 3600 + winner


def test_racing_backups_never_exceed_the_limit(store: Store, node: Node):
    from chalicelib.store.records import Backup

    owner = uid("u")
    server = make_server(store, node, owner, [])
    me = store.as_user(owner)
    limit = ROUNDS + 1
    me.create_backup(Backup(server_id=server.id, name="first"), limit=limit)
    for rnd in range(ROUNDS):  # each round: two clients race for the last free slot
        outcome = _race(partial(me.create_backup, Backup(server_id=server.id, name=f"a{rnd}"), limit=rnd + 2),
                        partial(me.create_backup, Backup(server_id=server.id, name=f"b{rnd}"), limit=rnd + 2))
        assert sorted(outcome) == ["conflict", "ok"], outcome
        assert me.count_backups(server.id) == rnd + 2
        assert len(list(me.list_backups(server.id))) == rnd + 2
