"""The control plane's API process is SIGKILLed while creates are in flight, then restarted.

Each create writes server + allocations + audit entry in one transaction, so whatever moment
the process dies at, the store holds whole servers or nothing: every allocation belongs to an
existing server and matches its ports, no port is held twice, every server has its audit entry.
Clients whose request died retry, and everything they asked for ends up created.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest
import requests
from livewire import wait_status

from .conftest import user

pytestmark = [pytest.mark.faults, pytest.mark.broker]
CREATES = 10  # with retries' duplicates at most 20, the stack's port range


def _store_snapshot(stack) -> tuple[dict, list]:
    from chalicelib.store import get_store

    admin = get_store().as_admin("fault test")
    servers = {s.id: s for s in admin.list_servers_on_node(stack.opts.node_id)}
    return servers, admin.allocations(stack.opts.node_id)


def _assert_consistent(stack) -> dict:
    servers, allocations = _store_snapshot(stack)
    ports = [a.port for a in allocations]
    assert len(ports) == len(set(ports)), f"a port is allocated twice: {sorted(ports)}"
    by_server: dict[str, set[int]] = {}
    for a in allocations:
        assert a.server_id in servers, f"allocation {a.port} belongs to no server ({a.server_id}): half-written"
        by_server.setdefault(a.server_id, set()).add(a.port)
    for sid, server in servers.items():
        assert by_server.get(sid) == {p.port for p in server.ports}, f"server {sid} without its allocations"
    return servers


def test_api_killed_mid_create_leaves_whole_records_and_retries_succeed(fault_stack) -> None:
    stack = fault_stack(runtime="process", api_process=True)
    owner = user(stack)
    admin = user(stack, admin=True)
    r = requests.patch(f"{admin.base}/admin/nodes/{stack.opts.node_id}", json={"cpu_percent": 10_000},
                       headers=admin.headers, timeout=15)  # room by CPU for every create
    assert r.status_code == 200, r.text
    body = {"blueprint_id": "demo", "location_id": "local", "variables": {"SERVER_NAME": "Crash"}}
    outcome: dict[int, str] = {}
    first_done = threading.Event()

    def create(i: int) -> None:
        try:
            r = requests.post(f"{owner.base}/servers", json={**body, "name": f"crash-{i}"}, headers=owner.headers,
                              timeout=20)
            outcome[i] = r.json()["id"] if r.status_code == 201 else f"http {r.status_code}"
            first_done.set()
        except requests.RequestException:
            outcome[i] = "died"

    with cf.ThreadPoolExecutor(CREATES) as pool:
        futures = [pool.submit(create, i) for i in range(CREATES)]
        first_done.wait(20)  # some creates done, the rest in flight
        stack.kill_api_process()
        cf.wait(futures, 30)
    died = [i for i, v in outcome.items() if v == "died"]
    servers = _assert_consistent(stack)  # straight after the crash, before anyone retries

    stack.start_api_process()
    for i in died:  # a client whose request died retries it
        r = requests.post(f"{owner.base}/servers", json={**body, "name": f"crash-{i}"}, headers=owner.headers,
                          timeout=20)
        assert r.status_code == 201, r.text
        outcome[i] = r.json()["id"]
    servers = _assert_consistent(stack)
    names = {s.name for s in servers.values()}
    assert names >= {f"crash-{i}" for i in range(CREATES)}, "a retried create is missing"
    listed = owner.get("/servers").json()
    assert {s["id"] for s in listed} == set(servers), "the API lists exactly the servers in the store"
    # Every server the clients know about installs (its install command went out).
    for sid in outcome.values():
        wait_status(owner, sid, "offline", 120)
    extra = len(servers) - CREATES
    print(f"{len(died)} creates died with the process; {extra} duplicate server(s) from retried creates")


def test_create_retried_with_the_same_idempotency_key_creates_one_server(fault_stack) -> None:
    stack = fault_stack(runtime="process")
    owner = user(stack)
    body = {"name": "once", "blueprint_id": "demo", "location_id": "local", "variables": {"SERVER_NAME": "Once"}}
    headers = {**owner.headers, "Idempotency-Key": "create-once-0001"}
    first = requests.post(f"{owner.base}/servers", json=body, headers=headers, timeout=20)
    again = requests.post(f"{owner.base}/servers", json=body, headers=headers, timeout=20)
    assert first.status_code == 201 and again.status_code in {200, 201}, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert len(owner.get("/servers").json()) == 1
    other = requests.post(f"{owner.base}/servers", json={**body, "name": "different"}, headers=headers, timeout=20)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
